// Package quota enforces Kafka's client quotas (KIP-13, KIP-124, KIP-219,
// KIP-257, KIP-599) for one broker: it measures what each client uses and
// says how long the client must be throttled. It does no I/O and starts no
// goroutines; the broker feeds it the quotas stored in etcd, records usage
// as requests are handled, and mutes connections for the throttle times it
// returns. Time comes from the injected clock, so tests need no sleeps.
//
// # Entities and precedence
//
// A quota is set on an entity: a client id, a user, or both, each part a
// name or <default>. For each quota type independently, the quota applying
// to a request is found as Kafka's DefaultQuotaCallback finds it, most
// specific first:
//
//	user=U, client-id=C        user=<default>, client-id=C
//	user=U, client-id=<default> user=<default>, client-id=<default>
//	user=U                      user=<default>
//	client-id=C                 client-id=<default>
//
// (left column before right; rows top to bottom). Without an authenticated
// user (the empty user, which is all connections until SASL exists) only
// the client-id entities apply. The usage is measured per metric tag pair,
// as in Kafka: a quota set on user=U alone is shared by every client of U,
// while a client-id quota (default or specific) is measured per client id.
//
// # Rates
//
// Byte rates (producer_byte_rate, consumer_byte_rate) and the request
// quota (request_percentage: handler time as a percentage of one thread)
// are sampled rates, Kafka's Rate over SampledStat: Samples windows of
// Window each, a window starting with the first value recorded after the
// previous one ended, windows older than Samples*Window dropped, and the
// elapsed time never taken below Samples-1 whole windows (so a new client
// does not measure an enormous rate from its first request). When the
// rate after recording a value exceeds the quota, the throttle time is
// Kafka's (rate-quota)/quota*window, the time that brings the rate back to
// the quota if nothing more is recorded. New windows start on the grid of
// the previous ones, so windows tile time across idle gaps.
//
// A consequence of whole windows expiring at once, in Kafka as here: a
// client offering more than its quota is held to it on average over every
// Samples*Window span, but within one it alternates between a burst (when
// its oldest windows expire) and throttled waits. Measured over a whole
// number of such spans its rate is within a few percent of the quota;
// over a shorter or unaligned span it can be off by a fifth.
//
// The controller mutation quota (controller_mutation_rate, partitions
// created or deleted per second) is a token bucket as in KIP-599: burst
// (Samples-1)*Window*quota, refilled at the quota; a strict request (new
// enough to understand THROTTLING_QUOTA_EXCEEDED) is refused while the
// bucket is negative, an older one is accepted and throttled.
//
// # Concurrency and memory
//
// A Manager is safe for concurrent use. Each measured tag pair holds one
// small sensor; sensors unused for Samples*Window carry no information any
// more (every window would be dropped) and are deleted, so clients that
// come and go, or invent client ids, do not grow the broker. Statistics
// for metrics are kept per configured entity only, which bounds their
// label set by what operators configure.
package quota
