package server

import (
	"encoding/json"
	"net/http"
)

// Paths served by DebugHandler.
const (
	DebugProxiesPath = "/debug/xds/proxies"
	DebugNACKsPath   = "/debug/xds/nacks"
)

// DebugHandler serves, as JSON, {"proxies": Proxies()} at DebugProxiesPath,
// {"nacks": NACKs()} at DebugNACKsPath and a node's config at DebugConfigPath. Mount it on the manager's metrics or health server.
func (s *Server) DebugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+DebugProxiesPath, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, struct {
			Proxies []ProxyStatus `json:"proxies"`
		}{s.Proxies()})
	})
	mux.HandleFunc("GET "+DebugNACKsPath, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, struct {
			NACKs []NACK `json:"nacks"`
		}{s.NACKs()})
	})
	mux.HandleFunc("GET "+DebugConfigPath, s.serveConfig)
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing to do
}
