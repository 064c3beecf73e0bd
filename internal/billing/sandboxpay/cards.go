package sandboxpay

import (
	"strings"

	"atrium/internal/kernel"
)

// TestCard is a card number the sandbox knows, with what it does.
type TestCard struct {
	Number      string
	Description string
}

// TestCards are the numbers the checkout page accepts, in the order it
// lists them.
var TestCards = []TestCard{
	{Number: "4242 4242 4242 4242", Description: "Succeeds, now and at every renewal."},
	{Number: "4000 0000 0000 0002", Description: "Declined at checkout: nothing changes."},
	{Number: "4000 0000 0000 0341", Description: "Accepted now; every later charge fails (renewals go past due)."},
}

// What a card does when charged after checkout, as sandbox_subscription
// stores it.
const (
	behaviourSucceeds   = "succeeds"
	behaviourFailsLater = "fails_later"
)

// card is a test card as the sandbox keeps it: never the number.
type card struct {
	last4     string
	behaviour string
}

// readCard reads a number typed on the page. It returns payment_required
// for the card that is always declined, and invalid for a number that is
// not a test card: the sandbox takes no real card, and says so.
func readCard(number string) (card, error) {
	digits := strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, number)
	switch digits {
	case "4242424242424242":
		return card{last4: "4242", behaviour: behaviourSucceeds}, nil
	case "4000000000000341":
		return card{last4: "0341", behaviour: behaviourFailsLater}, nil
	case "4000000000000002":
		return card{}, &kernel.Error{Code: kernel.CodePaymentRequired, Message: "Your card was declined."}
	}
	return card{}, kernel.Invalid("card_number", "Unknown test card: use one of the numbers listed on this page.")
}
