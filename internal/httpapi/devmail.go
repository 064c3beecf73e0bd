package httpapi

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"atrium/internal/httpapi/cursor"
	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/mail/devmail"
)

// The dev mailbox is a developer's local tool: the mail a development Atrium
// "sent", readable without a mail server. It needs no credentials, so it exists
// only outside production and only while the dev mailbox is the mailer (the
// app decides; see Deps.DevMailbox). Its operations are hidden from the
// OpenAPI document's paths, which stay the same in every environment (huma
// still lists the body schemas among the components).

// prefixDevMail prefixes dev mailbox message IDs.
const prefixDevMail = "msg"

// devMailHTMLPolicy lets a browser render a message's HTML part and nothing
// else: no script, no frame, no remote image or font, no form target.
const devMailHTMLPolicy = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; frame-ancestors 'none'"

// DevMailBody is a message in the dev mailbox.
type DevMailBody struct {
	ID        string    `json:"id" example:"msg_01h455vb4pex5vsknk084sn02q"`
	To        []string  `json:"to" doc:"The recipients as the message was addressed"`
	Subject   string    `json:"subject"`
	Text      string    `json:"text" doc:"The plain-text part"`
	HTML      string    `json:"html" doc:"The HTML part"`
	Tag       string    `json:"tag" example:"verify_email" doc:"The kind of message"`
	CreatedAt time.Time `json:"created_at"`
}

type listDevMailInput struct {
	Limit string `query:"limit" doc:"Messages to answer, 1-100 (default 20; larger values are capped at 100)"`
	To    string `query:"to" doc:"Only messages to this address (among the newest 100)" example:"ada@example.com"`
}

type listDevMailOutput struct {
	Body Page[DevMailBody]
}

type devMailPath struct {
	MessageID string `path:"message_id" example:"msg_01h455vb4pex5vsknk084sn02q" doc:"Message ID"`
}

type devMailOutput struct {
	Body DevMailBody
}

type devMailHTMLOutput struct {
	ContentType string `header:"Content-Type"`
	Policy      string `header:"Content-Security-Policy"`
	Body        []byte
}

func registerDevMailbox(api huma.API, box *devmail.Mailbox) {
	tags := []string{"Development"}
	huma.Register(api, huma.Operation{
		OperationID: "list-dev-mailbox", Method: http.MethodGet, Path: "/dev/mailbox", Tags: tags, Hidden: true,
		Summary:     "List the dev mailbox",
		Description: "Development only: the mail this server would have sent, newest first. No credentials needed.",
		Errors:      []int{http.StatusBadRequest},
	}, func(ctx context.Context, in *listDevMailInput) (*listDevMailOutput, error) {
		page, err := listDevMail(ctx, box, in)
		if err != nil {
			return nil, err
		}
		return &listDevMailOutput{Body: page}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "get-dev-mail", Method: http.MethodGet, Path: "/dev/mailbox/{message_id}", Tags: tags, Hidden: true,
		Summary: "Read a message of the dev mailbox", Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *devMailPath) (*devMailOutput, error) {
		m, err := getDevMail(ctx, box, in.MessageID)
		if err != nil {
			return nil, err
		}
		return &devMailOutput{Body: devMailBody(m)}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "get-dev-mail-html", Method: http.MethodGet, Path: "/dev/mailbox/{message_id}/html", Tags: tags, Hidden: true,
		Summary:     "Render a message's HTML part",
		Description: "The HTML part as text/html, under a Content-Security-Policy that allows inline styles and data: images only.",
		Errors:      []int{http.StatusNotFound},
	}, func(ctx context.Context, in *devMailPath) (*devMailHTMLOutput, error) {
		m, err := getDevMail(ctx, box, in.MessageID)
		if err != nil {
			return nil, err
		}
		return &devMailHTMLOutput{ContentType: "text/html; charset=utf-8", Policy: devMailHTMLPolicy, Body: []byte(m.HTML)}, nil
	})
}

// listDevMail answers up to limit messages, newest first, only those to one
// address when to is given. It returns invalid for a bad limit or address.
func listDevMail(ctx context.Context, box *devmail.Mailbox, in *listDevMailInput) (Page[DevMailBody], error) {
	limit, err := cursor.ParseLimit(in.Limit)
	if err != nil {
		return Page[DevMailBody]{}, err
	}
	fetch := limit + 1
	var want string
	if in.To != "" {
		a, err := mail.ParseAddress(in.To)
		if err != nil {
			return Page[DevMailBody]{}, kernel.Invalid("query.to", "to: "+err.Error())
		}
		want, fetch = strings.ToLower(a.Address), devmail.MaxList
	}
	msgs, err := box.List(ctx, fetch)
	if err != nil {
		return Page[DevMailBody]{}, err
	}
	page := Page[DevMailBody]{Items: []DevMailBody{}}
	for _, m := range msgs {
		if want != "" && !addressedTo(m, want) {
			continue
		}
		if len(page.Items) == limit {
			page.HasMore = true
			break
		}
		page.Items = append(page.Items, devMailBody(m))
	}
	return page, nil
}

// addressedTo reports whether one of m's recipients is address (lower-case).
func addressedTo(m devmail.Stored, address string) bool {
	for _, to := range m.To {
		if a, err := mail.ParseAddress(to); err == nil && strings.ToLower(a.Address) == address {
			return true
		}
	}
	return false
}

// getDevMail returns the message with the prefixed ID raw. A malformed ID
// answers not_found, the same as an unknown one.
func getDevMail(ctx context.Context, box *devmail.Mailbox, raw string) (devmail.Stored, error) {
	id, err := kernel.ParseID(prefixDevMail, raw)
	if err != nil {
		return devmail.Stored{}, kernel.NotFound("message")
	}
	return box.Get(ctx, id)
}

func devMailBody(m devmail.Stored) DevMailBody {
	return DevMailBody{ID: kernel.FormatID(prefixDevMail, m.ID), To: m.To, Subject: m.Subject, Text: m.Text, HTML: m.HTML,
		Tag: m.Tag, CreatedAt: m.CreatedAt}
}
