package broker

import (
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// serveHTTP serves /metrics, /healthz (the process is up) and /readyz (the
// broker is registered in etcd and serving) on the HTTP listener.
func (b *Broker) serveHTTP() {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(b.registry, promhttp.HandlerOpts{Registry: b.registry}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-b.reg.Lost():
			http.Error(w, "not registered in etcd", http.StatusServiceUnavailable)
			return
		default:
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	b.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5e9}
	b.goroutines.Go("http", func() {
		if err := b.httpSrv.Serve(b.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.log.Error("http server stopped", "err", err)
		}
	})
}
