package webhooks

import (
	"encoding/json"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"atrium/internal/kernel"
)

// MaxEventTypes is how many entries an endpoint's filter may hold.
const MaxEventTypes = 50

var (
	// exactType is an event type as the outbox writes it: "member.invited".
	exactType = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$`)
	// typePrefix is a pattern matching every type under a prefix: "member.*".
	typePrefix = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\.\*$`)
)

// validEventTypes returns an endpoint's filter without duplicates, in the
// order given. It returns an invalid *kernel.Error naming event_types for
// an entry that is neither an event type nor a "prefix.*" pattern, or for
// more than MaxEventTypes entries.
func validEventTypes(types []string) ([]string, error) {
	out := []string{}
	for i, t := range types {
		if len(t) > 200 || (!exactType.MatchString(t) && !typePrefix.MatchString(t)) {
			return nil, kernel.Invalid("event_types", "entry "+strconv.Itoa(i+1)+` must be an event type ("member.invited") or a prefix pattern ("member.*")`)
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	if len(out) > MaxEventTypes {
		return nil, kernel.Invalid("event_types", "must have at most "+strconv.Itoa(MaxEventTypes)+" entries")
	}
	return out, nil
}

// matches reports whether an endpoint with filter receives eventType.
func matches(filter []string, eventType string) bool {
	if len(filter) == 0 {
		return true
	}
	for _, f := range filter {
		if prefix, ok := strings.CutSuffix(f, "*"); ok {
			if strings.HasPrefix(eventType, prefix) {
				return true
			}
		} else if f == eventType {
			return true
		}
	}
	return false
}

// typesJSON is a filter as the event_types column holds it.
func typesJSON(types []string) string {
	if types == nil {
		types = []string{}
	}
	b, _ := json.Marshal(types) // strings always encode
	return string(b)
}
