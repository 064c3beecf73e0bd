package httpapi

import (
	"bytes"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/danielgtaylor/huma/v2"
)

// The API reference is rendered on the server from the same OpenAPI document
// served at /api/openapi.json: no script, no CDN, readable offline.

type docsOperation struct {
	Method, Path, Summary, Description, ID string
	Params                                 []docsField
	Body                                   string // schema name of the request body
	Responses                              []docsResponse
	Secured                                bool
}

type docsResponse struct{ Status, Description, Schema string }

type docsField struct {
	Name, In, Type, Description string
	Required                    bool
}

type docsSchema struct {
	Name   string
	Fields []docsField
}

type docsPage struct {
	Title, Version, Description string
	Tags                        []docsTag
	Events                      []docsEvent
	Schemas                     []docsSchema
}

// docsEvent is one event type, from the document's webhooks.
type docsEvent struct{ Name, Description, Schema string }

type docsTag struct {
	Name       string
	Operations []docsOperation
}

var docsTemplate = template.Must(template.New("docs").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} reference</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d2433;background:#fafbfc}
main{max-width:960px;margin:0 auto;padding:24px}
h1{margin:0 0 4px}h2{margin-top:40px;border-bottom:1px solid #dde1e8;padding-bottom:4px}
.op{background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:12px 16px;margin:12px 0}
.m{display:inline-block;min-width:64px;font:600 13px ui-monospace,monospace;padding:2px 6px;border-radius:4px;color:#fff;background:#5a6578;text-align:center}
.GET{background:#1f7a4d}.POST{background:#1f5fa8}.PATCH{background:#a86a1f}.PUT{background:#7a4da8}.DELETE{background:#a8321f}
code,.path{font-family:ui-monospace,monospace}.path{font-weight:600;margin-left:8px}
table{border-collapse:collapse;width:100%;margin:8px 0}td,th{text-align:left;padding:4px 8px;border-top:1px solid #eef0f4;vertical-align:top}
.muted{color:#5a6578}.req{color:#a8321f;font-size:12px}
</style></head><body><main>
<h1>{{.Title}}</h1><p class="muted">Version {{.Version}} · <a href="/api/openapi.json">OpenAPI 3.1 document</a></p>
<p>{{.Description}}</p>
{{range .Tags}}<h2>{{.Name}}</h2>{{range .Operations}}
<div class="op" id="{{.ID}}"><span class="m {{.Method}}">{{.Method}}</span><span class="path">{{.Path}}</span>
<p><strong>{{.Summary}}</strong>{{if .Secured}} <span class="muted">· needs credentials (a session cookie or a bearer token)</span>{{end}}</p>
{{if .Description}}<p>{{.Description}}</p>{{end}}
{{if .Params}}<table><tr><th>Parameter</th><th>In</th><th>Type</th><th></th></tr>{{range .Params}}
<tr><td><code>{{.Name}}</code>{{if .Required}} <span class="req">required</span>{{end}}</td><td>{{.In}}</td><td>{{.Type}}</td><td>{{.Description}}</td></tr>{{end}}</table>{{end}}
{{if .Body}}<p>Body: <a href="#schema-{{.Body}}"><code>{{.Body}}</code></a></p>{{end}}
<table><tr><th>Status</th><th>Meaning</th><th>Body</th></tr>{{range .Responses}}
<tr><td>{{.Status}}</td><td>{{.Description}}</td><td>{{if .Schema}}<a href="#schema-{{.Schema}}"><code>{{.Schema}}</code></a>{{end}}</td></tr>{{end}}</table>
</div>{{end}}{{end}}
{{if .Events}}<h2 id="events">Events</h2><p>Sent to webhook endpoints and on each workspace's event stream, in an
<a href="#schema-EventEnvelope"><code>EventEnvelope</code></a> whose <code>data</code> depends on the type.</p>
<table><tr><th>Type</th><th>When</th><th>Envelope</th></tr>{{range .Events}}
<tr><td><code>{{.Name}}</code></td><td>{{.Description}}</td><td><a href="#schema-{{.Schema}}"><code>{{.Schema}}</code></a></td></tr>{{end}}</table>{{end}}
<h2>Schemas</h2>{{range .Schemas}}<div class="op" id="schema-{{.Name}}"><strong><code>{{.Name}}</code></strong>
<table>{{range .Fields}}<tr><td><code>{{.Name}}</code>{{if .Required}} <span class="req">required</span>{{end}}</td><td>{{.Type}}</td><td>{{.Description}}</td></tr>{{end}}</table></div>{{end}}
</main></body></html>`))

// docsHandler renders the reference once, on first request, after every
// operation has been registered.
func docsHandler(api huma.API) http.Handler {
	var once sync.Once
	var page []byte
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() {
			var buf bytes.Buffer
			if err := docsTemplate.Execute(&buf, buildDocs(api.OpenAPI())); err != nil {
				panic(err) // a template fault: recovery answers 500 and logs it
			}
			page = buf.Bytes()
		})
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		_, _ = w.Write(page)
	})
}

func buildDocs(oa *huma.OpenAPI) docsPage {
	page := docsPage{Title: oa.Info.Title, Version: oa.Info.Version, Description: oa.Info.Description}
	byTag := map[string][]docsOperation{}
	for path, item := range oa.Paths {
		for method, op := range map[string]*huma.Operation{"GET": item.Get, "POST": item.Post, "PUT": item.Put, "PATCH": item.Patch, "DELETE": item.Delete} {
			if op == nil || op.Hidden {
				continue
			}
			tag := "Other"
			if len(op.Tags) > 0 {
				tag = op.Tags[0]
			}
			byTag[tag] = append(byTag[tag], docsOp(method, path, op))
		}
	}
	for name, ops := range byTag {
		sort.Slice(ops, func(i, j int) bool { return ops[i].Path+ops[i].Method < ops[j].Path+ops[j].Method })
		page.Tags = append(page.Tags, docsTag{Name: name, Operations: ops})
	}
	sort.Slice(page.Tags, func(i, j int) bool { return page.Tags[i].Name < page.Tags[j].Name })
	page.Events = docsEvents(oa)
	if oa.Components != nil && oa.Components.Schemas != nil {
		for name, s := range oa.Components.Schemas.Map() {
			page.Schemas = append(page.Schemas, docsSchema{Name: name, Fields: schemaFields(s)})
		}
	}
	sort.Slice(page.Schemas, func(i, j int) bool { return page.Schemas[i].Name < page.Schemas[j].Name })
	return page
}

// docsEvents lists the event types the document's webhooks describe, by name.
func docsEvents(oa *huma.OpenAPI) []docsEvent {
	var out []docsEvent
	for name, item := range oa.Webhooks {
		op := item.Post
		if op == nil || op.RequestBody == nil || op.RequestBody.Content["application/json"] == nil {
			continue
		}
		e := docsEvent{Name: name, Description: op.Description, Schema: refName(op.RequestBody.Content["application/json"].Schema)}
		if oa.Components != nil && oa.Components.Schemas != nil {
			if s := oa.Components.Schemas.Map()[e.Schema]; s != nil && s.Description != "" {
				e.Description = s.Description // the operation's adds where events go, the same for all
			}
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func docsOp(method, path string, op *huma.Operation) docsOperation {
	d := docsOperation{Method: method, Path: path, Summary: op.Summary, Description: op.Description, ID: op.OperationID, Secured: len(op.Security) > 0}
	for _, p := range op.Parameters {
		d.Params = append(d.Params, docsField{Name: p.Name, In: p.In, Type: schemaType(p.Schema), Description: p.Description, Required: p.Required})
	}
	if op.RequestBody != nil {
		if mt := op.RequestBody.Content["application/json"]; mt != nil {
			d.Body = refName(mt.Schema)
		}
	}
	for status, resp := range op.Responses {
		dr := docsResponse{Status: status, Description: resp.Description}
		for _, mt := range resp.Content {
			dr.Schema = refName(mt.Schema)
		}
		d.Responses = append(d.Responses, dr)
	}
	sort.Slice(d.Responses, func(i, j int) bool { return d.Responses[i].Status < d.Responses[j].Status })
	return d
}

func schemaFields(s *huma.Schema) []docsField {
	var out []docsField
	required := map[string]bool{}
	for _, r := range s.Required {
		required[r] = true
	}
	for name, p := range s.Properties {
		out = append(out, docsField{Name: name, Type: schemaType(p), Description: p.Description, Required: required[name]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func schemaType(s *huma.Schema) string {
	if s == nil {
		return ""
	}
	if s.Ref != "" {
		return refName(s)
	}
	t := s.Type
	if s.Format != "" {
		t += " (" + s.Format + ")"
	}
	if s.Type == "array" && s.Items != nil {
		t = "array of " + schemaType(s.Items)
	}
	return t
}

func refName(s *huma.Schema) string {
	if s == nil {
		return ""
	}
	return strings.TrimPrefix(s.Ref, "#/components/schemas/")
}
