package gateway

import (
	"html/template"
	"net/http"
)

var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>body{font-family:sans-serif;max-width:48em;margin:2em auto}</style>
</head><body><h1>{{.Title}}</h1><p id="reason">{{.Text}}</p></body></html>
`))

// page answers with a small HTML page. It never carries upstream detail.
func (g *Gateway) page(w http.ResponseWriter, status int, title, text string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if err := pageTemplate.Execute(w, struct{ Title, Text string }{title, text}); err != nil {
		g.log.Debug("gateway: write page", "err", err)
	}
}
