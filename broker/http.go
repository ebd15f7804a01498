package broker

import (
	"errors"
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// serveHTTP serves /metrics, /healthz (the process is up), /readyz (the
// broker is registered in etcd and serving) and Go's profiler under
// /debug/pprof/ on the HTTP listener. The listener is meant for operators
// (it is off unless --http-listen is set), so profiles are not guarded
// further.
func (b *Broker) serveHTTP() {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(b.registry, promhttp.HandlerOpts{Registry: b.registry}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-b.reg.Load().Lost():
			http.Error(w, "not registered in etcd", http.StatusServiceUnavailable)
			return
		default:
		}
		if b.logDirFailed() {
			http.Error(w, "log directory offline: "+b.logDir.err().Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	if b.cfg.TestFaultInjection {
		mux.HandleFunc("/debug/faults", b.serveFaults)
	}
	b.serveDLQHTTP(mux) // http_dlq.go
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	b.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5e9}
	b.goroutines.Go("http", func() {
		if err := b.httpSrv.Serve(b.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.log.Error("http server stopped", "err", err)
		}
	})
}
