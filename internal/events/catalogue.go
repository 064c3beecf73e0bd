package events

import (
	"encoding/json"
	"sync/atomic"
)

// Catalogue is the documented set of event types, with the shape of each
// one's payload: the contract webhook endpoints and event-stream clients code
// against. internal/events/catalog holds Atrium's; this package cannot
// import it (the domains that emit events import this package).
type Catalogue interface {
	// Check returns an error unless eventType is documented and data, the
	// payload as JSON, has only fields its documentation names.
	Check(eventType string, data json.RawMessage) error
}

var catalogue atomic.Pointer[Catalogue]

// UseCatalogue makes Append refuse, with an internal error, any event c does
// not document, so that an undocumented event fails the first test that
// emits it rather than surprise a subscriber. The app installs Atrium's
// catalogue when it starts; the outbox checks nothing before that, so a test
// of this package or of the store may append made-up types. It is process
// wide, like the routes of http.DefaultServeMux: there is one catalogue per
// binary.
func UseCatalogue(c Catalogue) {
	if c == nil {
		catalogue.Store(nil)
		return
	}
	catalogue.Store(&c)
}

// checkCatalogued returns the installed catalogue's verdict on one event, nil
// when no catalogue is installed.
func checkCatalogued(eventType string, data json.RawMessage) error {
	c := catalogue.Load()
	if c == nil {
		return nil
	}
	return (*c).Check(eventType, data)
}
