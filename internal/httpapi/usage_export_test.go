package httpapi

// RegisterUsage registers GET /usage, for the tests of a handler that
// Deps does not wire yet.
var RegisterUsage = registerUsage
