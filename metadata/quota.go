package metadata

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"strings"
)

// ErrInvalidQuota is returned by SetClientQuota for an entity with neither a
// user nor a client-id part, or a value that is not a finite number.
var ErrInvalidQuota = errors.New("metadata: invalid client quota")

// QuotaName is one part of a QuotaEntity: absent (the zero value), the
// default (Kafka's <default>, which applies to every user or client id
// without a quota of its own), or a specific name. A specific name is never
// empty; Kafka refuses empty entity names.
type QuotaName struct {
	Default bool
	Name    string
}

// IsSet reports whether the part is present in its entity.
func (n QuotaName) IsSet() bool { return n.Default || n.Name != "" }

// String renders the part as Kafka's tools print it: "<default>" or the name.
func (n QuotaName) String() string {
	if n.Default {
		return "<default>"
	}
	return n.Name
}

// QuotaEntity names whom a client quota applies to, as Kafka's
// ClientQuotaEntity does: a user, a client id, or a user and a client id.
// Users are SASL principals; the model carries them so that authenticated
// connections can use them without a change of the stored format.
type QuotaEntity struct {
	User     QuotaName
	ClientID QuotaName
}

// ClientQuota is the quota record of one entity: its quota values by Kafka
// key (producer_byte_rate, consumer_byte_rate, request_percentage,
// controller_mutation_rate).
type ClientQuota struct {
	Entity QuotaEntity
	// Values holds the quotas set for the entity; never nil when returned
	// by a store. An entity without values has no record.
	Values map[string]float64
	// Revision is the store revision of the record's last write, 0 when it
	// does not exist. Pass it back unchanged to SetClientQuota for
	// compare-and-swap.
	Revision int64
}

// ClientQuotaEvent is one change seen by WatchClientQuotas. A delete carries
// the record's last values.
type ClientQuotaEvent struct {
	Type     EventType
	Quota    ClientQuota
	Snapshot bool // as in TopicEvent; the snapshot is in key order
}

// quotaKey is the entity's key below "quotas/": "user/<u>/client-id/<c>",
// "user/<u>" or "client-id/<c>", where a default part is "<default>" and a
// name is path-escaped (so it holds no '/' and never reads as "<default>").
// Keys sort in etcd's byte order, which is also the listing order.
func quotaKey(e QuotaEntity) string {
	part := func(n QuotaName) string {
		if n.Default {
			return "<default>"
		}
		return url.PathEscape(n.Name)
	}
	var parts []string
	if e.User.IsSet() {
		parts = append(parts, "user", part(e.User))
	}
	if e.ClientID.IsSet() {
		parts = append(parts, "client-id", part(e.ClientID))
	}
	return strings.Join(parts, "/")
}

// parseQuotaKey is the inverse of quotaKey.
func parseQuotaKey(k string) (QuotaEntity, error) {
	parts := strings.Split(k, "/")
	var e QuotaEntity
	if len(parts) != 2 && len(parts) != 4 {
		return e, fmt.Errorf("quota key %q: %w", k, ErrInvalidQuota)
	}
	for i := 0; i < len(parts); i += 2 {
		var n QuotaName
		if parts[i+1] == "<default>" {
			n.Default = true
		} else {
			name, err := url.PathUnescape(parts[i+1])
			if err != nil || name == "" {
				return e, fmt.Errorf("quota key %q: %w", k, ErrInvalidQuota)
			}
			n.Name = name
		}
		switch {
		case parts[i] == "user" && i == 0:
			e.User = n
		case parts[i] == "client-id":
			e.ClientID = n
		default:
			return e, fmt.Errorf("quota key %q: %w", k, ErrInvalidQuota)
		}
	}
	return e, nil
}

func validateQuota(q ClientQuota) error {
	if !q.Entity.User.IsSet() && !q.Entity.ClientID.IsSet() {
		return fmt.Errorf("empty quota entity: %w", ErrInvalidQuota)
	}
	for k, v := range q.Values {
		if k == "" || math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("quota %q=%v: %w", k, v, ErrInvalidQuota)
		}
	}
	return nil
}

// Quota records hold only the values; the entity is the key.
func encodeQuota(q ClientQuota) ([]byte, error) { return json.Marshal(q.Values) }

func decodeQuota(key string, b []byte, rev int64) (ClientQuota, error) {
	e, err := parseQuotaKey(key)
	if err != nil {
		return ClientQuota{}, err
	}
	q := ClientQuota{Entity: e, Revision: rev}
	if err := json.Unmarshal(b, &q.Values); err != nil {
		return ClientQuota{}, fmt.Errorf("decode quota %q: %w", key, err)
	}
	if q.Values == nil {
		q.Values = map[string]float64{}
	}
	return q, nil
}

func cloneQuota(q ClientQuota) ClientQuota {
	q.Values = maps.Clone(q.Values)
	if q.Values == nil {
		q.Values = map[string]float64{}
	}
	return q
}
