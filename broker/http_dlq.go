package broker

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/sluicedev/sluice/dlq"
)

// The dead-letter admin endpoints on the HTTP listener. They are clients
// of this broker's own Kafka listener (package dlq), so they see the
// cluster exactly as Kafka clients do, and work from any broker.
//
//	GET  /v1/dlq/inspect?topic=T[&source_topic=&reason=&group=&from_offset=&until_offset=&limit=]
//	POST /v1/dlq/redrive  {"topic": T, "source_topic", "reason", "group", "from_offset", "until_offset", "max"}
//
// Redrive changes data, so it answers 403 unless admin.http.writes.enable
// is true; one runs at a time per broker (429 otherwise). Both answer JSON:
// dlq.Summary, dlq.RedriveResult, or {"error": ...} with 400 (bad
// selection), 404 (no such topic) or 502 (the cluster failed the request).

// dlqHTTPTimeout bounds one inspection or redrive request.
const dlqHTTPTimeout = 10 * time.Minute

// maxDLQRequestBody bounds a redrive request's body.
const maxDLQRequestBody = 64 << 10

// dlqRedriveRequest is the body of POST /v1/dlq/redrive.
type dlqRedriveRequest struct {
	Topic string `json:"topic"`
	dlq.Selection
}

func (b *Broker) serveDLQHTTP(mux *http.ServeMux) {
	redriving := make(chan struct{}, 1)
	mux.HandleFunc("GET /v1/dlq/inspect", b.httpDLQInspect)
	mux.HandleFunc("POST /v1/dlq/redrive", func(w http.ResponseWriter, r *http.Request) {
		if !b.settings.brokerBool(settingAdminHTTPWrites) {
			httpJSONError(w, http.StatusForbidden, "redrive is disabled: set "+settingAdminHTTPWrites+"=true")
			return
		}
		select {
		case redriving <- struct{}{}:
			defer func() { <-redriving }()
		default:
			httpJSONError(w, http.StatusTooManyRequests, "a redrive is already running on this broker")
			return
		}
		b.httpDLQRedrive(w, r)
	})
}

func (b *Broker) httpDLQInspect(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	topic := q.Get("topic")
	if topic == "" {
		httpJSONError(w, http.StatusBadRequest, "topic is required")
		return
	}
	sel := dlq.Selection{SourceTopic: q.Get("source_topic"), Reason: dlq.Reason(q.Get("reason")), Group: q.Get("group")}
	var limit int64
	for name, dst := range map[string]*int64{"from_offset": &sel.FromOffset, "until_offset": &sel.UntilOffset, "limit": &limit} {
		if v := q.Get(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				httpJSONError(w, http.StatusBadRequest, name+": not an integer")
				return
			}
			*dst = n
		}
	}
	if err := sel.Validate(); err != nil {
		httpJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := b.dlqRequestContext(r)
	defer cancel()
	s, err := dlq.Inspect(ctx, b.dlqClientConfig(), topic, dlq.InspectOptions{Selection: sel, Limit: int(max(min(limit, dlq.MaxListLimit), -1))})
	if err != nil {
		httpDLQError(w, err)
		return
	}
	httpJSON(w, http.StatusOK, s)
}

func (b *Broker) httpDLQRedrive(w http.ResponseWriter, r *http.Request) {
	var req dlqRedriveRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxDLQRequestBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		httpJSONError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if req.Topic == "" {
		httpJSONError(w, http.StatusBadRequest, "topic is required")
		return
	}
	if err := req.Selection.Validate(); err != nil {
		httpJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := b.dlqRequestContext(r)
	defer cancel()
	res, err := dlq.Redrive(ctx, b.dlqClientConfig(), req.Topic, dlq.RedriveOptions{Selection: req.Selection})
	b.dlq.m.redrives.WithLabelValues("moved").Add(float64(res.Moved))
	b.dlq.m.redrives.WithLabelValues("unmovable").Add(float64(res.Unmovable))
	if err != nil {
		b.log.Warn("dead-letter redrive failed", "topic", req.Topic, "id", res.ID, "moved", res.Moved, "err", err)
		httpDLQError(w, err)
		return
	}
	b.log.Info("dead-letter redrive", "topic", req.Topic, "id", res.ID, "moved", res.Moved, "done", res.Done)
	httpJSON(w, http.StatusOK, res)
}

// dlqRequestContext bounds an admin request by dlqHTTPTimeout, the client
// and the broker's shutdown (the HTTP server's Shutdown does not cancel
// running handlers).
func (b *Broker) dlqRequestContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(r.Context(), dlqHTTPTimeout)
	stop := context.AfterFunc(b.bg, cancel)
	return ctx, func() { stop(); cancel() }
}

// dlqClientConfig points package dlq at this broker's Kafka listener.
func (b *Broker) dlqClientConfig() dlq.Config {
	return dlq.Config{Brokers: []string{b.ln.Addr().String()}, Logger: b.log.With("component", "dlq-admin")}
}

func httpDLQError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, dlq.ErrNoTopic):
		httpJSONError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		httpJSONError(w, http.StatusGatewayTimeout, err.Error())
	default:
		httpJSONError(w, http.StatusBadGateway, err.Error())
	}
}

func httpJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func httpJSONError(w http.ResponseWriter, code int, msg string) {
	httpJSON(w, code, map[string]string{"error": msg})
}
