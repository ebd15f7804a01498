package broker

import (
	"fmt"
	"strconv"
	"strings"
)

// This file lists the Kafka 4 settings Sluice accepts but does not act on,
// so that tools and deployment scripts written for Kafka (kafka-configs.sh,
// Terraform providers, operators that copy a server.properties into --set)
// work unchanged. Each is validated by type, described by DescribeConfigs
// with Kafka's default and its source like any other setting, and its
// documentation says why it has no effect. Settings of features Sluice
// lacks whose silent acceptance would weaken what the operator asked for
// (remote.storage.enable=true, an authorizer, TLS or SASL listeners) are
// accepted only at Kafka's default, which is what Sluice does anyway.

const inertPrefix = "Accepted without effect: "

// inert is a Kafka setting accepted and described without effect; static
// ones (readOnly) can only be given at start-up, as in Kafka.
func inert(name string, typ configType, def string, readOnly bool, why string) configDef {
	return configDef{name: name, typ: typ, def: def, readOnly: readOnly, doc: inertPrefix + why}
}

// onlyDefault accepts a value only when it equals Kafka's default, for
// settings whose other values ask for a feature Sluice does not have.
func onlyDefault(def, feature string) func(string) error {
	return func(v string) error {
		if v != def {
			return fmt.Errorf("%s is not supported by Sluice; only %q is accepted", feature, def)
		}
		return nil
	}
}

// throttledReplicas validates Kafka's throttled-replica lists: empty, "*",
// or partition:broker pairs separated by commas.
func throttledReplicas(v string) error {
	v = strings.TrimSpace(v)
	if v == "" || v == "*" {
		return nil
	}
	for _, item := range strings.Split(v, ",") {
		p, b, ok := strings.Cut(strings.TrimSpace(item), ":")
		_, perr := strconv.ParseUint(p, 10, 31)
		_, berr := strconv.ParseUint(b, 10, 31)
		if !ok || perr != nil || berr != nil {
			return fmt.Errorf("value %q is not a list of partition:broker pairs or *", v)
		}
	}
	return nil
}

// compatTopicConfigDefs are Kafka 4's topic settings Sluice accepts
// without effect.
func compatTopicConfigDefs() []configDef {
	rs := onlyDefault("false", "tiered storage (remote.storage.enable=true)")
	return []configDef{
		{name: "follower.replication.throttled.replicas", typ: typeList, def: "", validate: throttledReplicas,
			doc: inertPrefix + "replication is not throttled."},
		{name: "leader.replication.throttled.replicas", typ: typeList, def: "", validate: throttledReplicas,
			doc: inertPrefix + "replication is not throttled."},
		{name: "local.retention.bytes", typ: typeLong, def: "-2", synonyms: []synonym{{"log.local.retention.bytes", 1}},
			validate: atLeast(-2), doc: inertPrefix + "without tiered storage all of a log is local and retention.bytes applies."},
		{name: "local.retention.ms", typ: typeLong, def: "-2", synonyms: []synonym{{"log.local.retention.ms", 1}},
			validate: atLeast(-2), doc: inertPrefix + "without tiered storage all of a log is local and retention.ms applies."},
		{name: "remote.storage.enable", typ: typeBoolean, def: "false", validate: rs,
			doc: "Tiered storage is not supported; only false is accepted (Kafka also refuses true when the cluster has no remote storage)."},
		{name: "remote.log.copy.disable", typ: typeBoolean, def: "false", doc: inertPrefix + "there is no tiered storage."},
		{name: "remote.log.delete.on.disable", typ: typeBoolean, def: "false", doc: inertPrefix + "there is no tiered storage."},
		{name: "message.downconversion.enable", typ: typeBoolean, def: "true", synonyms: []synonym{{"log.message.downconversion.enable", 1}},
			doc: inertPrefix + "deprecated in Kafka 4, where down-conversion no longer exists; fetches older than v4 are refused."},
	}
}

// compatBrokerConfigDefs are Kafka 4's broker settings Sluice accepts
// without effect, with Kafka's defaults. Dynamic ones (readOnly false) can
// be altered at run time as in Kafka.
func compatBrokerConfigDefs() []configDef {
	const static, dynamic = true, false
	noThreads := "Sluice runs one goroutine per connection and per task instead of fixed thread pools."
	noKRaft := "Sluice keeps cluster metadata in etcd, not in a KRaft quorum."
	noTiered := "there is no tiered storage."
	defs := []configDef{
		// Threads and buffers.
		inert("num.io.threads", typeInt, "8", dynamic, noThreads),
		inert("num.network.threads", typeInt, "3", dynamic, noThreads),
		inert("num.replica.fetchers", typeInt, "1", dynamic, "each broker fetches from each leader over one connection."),
		inert("num.recovery.threads.per.data.dir", typeInt, "2", dynamic, "logs are recovered in parallel, bounded by GOMAXPROCS."),
		inert("num.replica.alter.log.dirs.threads", typeInt, "", static, "there is one log directory."),
		inert("background.threads", typeInt, "10", dynamic, noThreads),
		inert("socket.send.buffer.bytes", typeInt, "102400", static, "the operating system's socket buffer sizes are used."),
		inert("socket.receive.buffer.bytes", typeInt, "102400", static, "the operating system's socket buffer sizes are used."),
		inert("socket.listen.backlog.size", typeInt, "50", static, "the operating system's listen backlog is used."),
		inert("replica.socket.receive.buffer.bytes", typeInt, "65536", static, "the operating system's socket buffer sizes are used."),
		inert("request.timeout.ms", typeInt, "30000", static, "replica.socket.timeout.ms bounds follower requests."),
		inert("socket.connection.setup.timeout.ms", typeLong, "10000", static, "peers are dialled with replica.socket.timeout.ms."),
		inert("socket.connection.setup.timeout.max.ms", typeLong, "30000", static, "peers are dialled with replica.socket.timeout.ms."),
		{name: "fetch.max.bytes", typ: typeInt, def: "57671680", validate: atLeast(1024), readOnly: true, doc: "Most record bytes a consumer's Fetch response carries, whatever its max_bytes asks (followers are bounded by their own)."},
		inert("fetch.purgatory.purge.interval.requests", typeInt, "1000", static, "fetch waiters are removed when they end."),
		inert("producer.purgatory.purge.interval.requests", typeInt, "1000", static, "produce waiters are removed when they end."),
		inert("delete.records.purgatory.purge.interval.requests", typeInt, "1", static, "DeleteRecords does not wait in a purgatory."),
		inert("replica.high.watermark.checkpoint.interval.ms", typeLong, "5000", static, "high watermarks are checkpointed every log.flush.scheduler.interval.ms."),
		inert("log.flush.offset.checkpoint.interval.ms", typeInt, "60000", static, "recovery points are kept with each log's own checkpoints."),
		inert("log.flush.start.offset.checkpoint.interval.ms", typeInt, "60000", static, "the log start offset is persisted when it moves."),
		inert("log.dir.failure.timeout.ms", typeLong, "30000", static, "there is one log directory."),
		inert("log.initial.task.delay.ms", typeLong, "30000", static, "the first retention check runs at most 30 s after start-up."),
		// The log cleaner.
		inert("log.cleaner.enable", typeBoolean, "true", static, "compacted topics are always cleaned."),
		inert("log.cleaner.threads", typeInt, "1", dynamic, "one log is compacted at a time."),
		inert("log.cleaner.backoff.ms", typeLong, "15000", dynamic, "the cleaner looks for work on every maintenance pass (log.flush.scheduler.interval.ms)."),
		inert("log.cleaner.dedupe.buffer.size", typeLong, "134217728", dynamic, "the cleaner's key map is sized from the log."),
		inert("log.cleaner.io.buffer.size", typeInt, "524288", dynamic, "the cleaner's buffers are sized from the log."),
		inert("log.cleaner.io.buffer.load.factor", typeDouble, "0.9", dynamic, "the cleaner's buffers are sized from the log."),
		inert("log.cleaner.io.max.bytes.per.second", typeDouble, "1.7976931348623157E308", dynamic, "the cleaner's I/O is not throttled."),
		inert("log.local.retention.bytes", typeLong, "-2", dynamic, noTiered),
		inert("log.local.retention.ms", typeLong, "-2", dynamic, noTiered),
		inert("log.message.downconversion.enable", typeBoolean, "true", dynamic, "deprecated in Kafka 4, where down-conversion no longer exists."),
		// Replication throttles.
		inert("leader.replication.throttled.rate", typeLong, maxLong, dynamic, "replication is not throttled."),
		inert("follower.replication.throttled.rate", typeLong, maxLong, dynamic, "replication is not throttled."),
		inert("replica.alter.log.dirs.io.max.bytes.per.second", typeLong, maxLong, dynamic, "there is one log directory."),
		inert("replication.quota.window.num", typeInt, "11", static, "replication is not throttled."),
		inert("replication.quota.window.size.seconds", typeInt, "1", static, "replication is not throttled."),
		inert("alter.log.dirs.replication.quota.window.num", typeInt, "11", static, "there is one log directory."),
		inert("alter.log.dirs.replication.quota.window.size.seconds", typeInt, "1", static, "there is one log directory."),
		inert("replica.selector.class", typeClass, "", static, "consumers fetch from leaders (no KIP-392 follower fetching)."),
		// Cluster membership and metadata (KRaft in Kafka).
		inert("process.roles", typeList, "", static, noKRaft),
		inert("controller.quorum.voters", typeList, "", static, noKRaft),
		inert("controller.quorum.bootstrap.servers", typeList, "", static, noKRaft),
		inert("controller.listener.names", typeString, "", static, noKRaft),
		inert("controller.quorum.election.timeout.ms", typeInt, "1000", static, noKRaft),
		inert("controller.quorum.election.backoff.max.ms", typeInt, "1000", static, noKRaft),
		inert("controller.quorum.fetch.timeout.ms", typeInt, "2000", static, noKRaft),
		inert("controller.quorum.append.linger.ms", typeInt, "25", static, noKRaft),
		inert("controller.quorum.request.timeout.ms", typeInt, "2000", static, noKRaft),
		inert("controller.quorum.retry.backoff.ms", typeInt, "20", static, noKRaft),
		inert("metadata.log.dir", typeString, "", static, noKRaft),
		inert("metadata.log.segment.bytes", typeInt, "1073741824", static, noKRaft),
		inert("metadata.log.segment.ms", typeLong, "604800000", static, noKRaft),
		inert("metadata.max.retention.bytes", typeLong, "104857600", static, noKRaft),
		inert("metadata.max.retention.ms", typeLong, "604800000", static, noKRaft),
		inert("metadata.log.max.record.bytes.between.snapshots", typeLong, "20971520", static, noKRaft),
		inert("metadata.log.max.snapshot.interval.ms", typeLong, "3600000", static, noKRaft),
		inert("metadata.max.idle.interval.ms", typeInt, "500", static, noKRaft),
		inert("broker.heartbeat.interval.ms", typeInt, "2000", static, "brokers keep their etcd lease alive within broker.session.timeout.ms."),
		inert("initial.broker.registration.timeout.ms", typeInt, "60000", static, "registration in etcd is bounded by the start-up context."),
		inert("log.dirs", typeString, "", static, "the data directory is --data-dir."),
		inert("log.dir", typeString, "/tmp/kafka-logs", static, "the data directory is --data-dir."),
		inert("broker.rack", typeString, "", static, "the rack is --rack."),
		inert("create.topic.policy.class.name", typeClass, "", static, "Java policy classes cannot be loaded."),
		inert("alter.config.policy.class.name", typeClass, "", static, "Java policy classes cannot be loaded."),
		inert("client.quota.callback.class", typeClass, "", static, "Java callback classes cannot be loaded."),
		// Producers.
		{name: "producer.id.expiration.ms", typ: typeInt, def: "86400000", validate: atLeast(1),
			doc: "Idempotent producer state idle for this long is forgotten."},
		inert("producer.id.expiration.check.interval.ms", typeInt, "600000", static, "producer ids are expired on every maintenance pass."),
		// Groups and offsets.
		inert("offsets.load.buffer.size", typeInt, "5242880", static, "__consumer_offsets is read in bounded batches."),
		inert("offsets.topic.compression.codec", typeInt, "0", static, "group records are written uncompressed."),
		inert("group.coordinator.threads", typeInt, "4", static, noThreads),
		inert("group.coordinator.append.linger.ms", typeInt, "5", static, "group records are written as soon as they are made."),
		inert("group.coordinator.rebalance.protocols", typeList, "classic,consumer", static, "the classic and consumer (KIP-848) protocols are always on."),
		inert("group.consumer.max.size", typeInt, "2147483647", static, "group.max.size bounds every group."),
		inert("group.consumer.migration.policy", typeString, "bidirectional", static, "groups are not converted between protocols."),
		// Metrics and monitoring.
		inert("metric.reporters", typeList, "", dynamic, "metrics are served in Prometheus format on --http-listen."),
		inert("metrics.num.samples", typeInt, "2", static, "metrics are served in Prometheus format on --http-listen."),
		inert("metrics.sample.window.ms", typeLong, "30000", static, "metrics are served in Prometheus format on --http-listen."),
		inert("metrics.recording.level", typeString, "INFO", static, "metrics are served in Prometheus format on --http-listen."),
		inert("kafka.metrics.reporters", typeList, "", static, "metrics are served in Prometheus format on --http-listen."),
		inert("kafka.metrics.polling.interval.secs", typeInt, "10", static, "metrics are served in Prometheus format on --http-listen."),
		inert("telemetry.max.bytes", typeInt, "1048576", static, "client telemetry (KIP-714) is not collected."),
		// Tiered storage.
		inert("remote.log.storage.system.enable", typeBoolean, "false", static, noTiered),
		// Security: only Kafka's defaults, which are what Sluice does.
		{name: "authorizer.class.name", typ: typeString, def: "", readOnly: true, validate: onlyDefault("", "an authorizer"),
			doc: "Authorization is not supported; only the empty default (no authorizer) is accepted."},
		{name: "security.inter.broker.protocol", typ: typeString, def: "PLAINTEXT", readOnly: true, validate: onlyDefault("PLAINTEXT", "a secured inter-broker protocol"),
			doc: "Brokers talk plaintext; only PLAINTEXT is accepted."},
		{name: "sasl.enabled.mechanisms", typ: typeList, def: "GSSAPI", readOnly: true,
			doc: inertPrefix + "no SASL listener exists, so no mechanism is offered."},
		{name: "ssl.client.auth", typ: typeString, def: "none", readOnly: true, validate: onlyDefault("none", "TLS client authentication"),
			doc: "TLS is not supported; only none is accepted."},
		inert("connections.max.reauth.ms", typeLong, "0", static, "there is no SASL re-authentication."),
		// Listeners: one PLAINTEXT listener, given by --listen and --advertise.
		{name: "listeners", typ: typeList, def: "PLAINTEXT://:9092", readOnly: true, validate: plaintextListeners,
			doc: inertPrefix + "the listener is --listen (PLAINTEXT only; a listener of another security protocol is refused)."},
		{name: "advertised.listeners", typ: typeList, def: "", readOnly: true, validate: plaintextListeners,
			doc: inertPrefix + "the advertised address is --advertise (PLAINTEXT only; a listener of another security protocol is refused)."},
		{name: "listener.security.protocol.map", typ: typeString, def: kafkaProtocolMap, readOnly: true, validate: plaintextProtocolMap,
			doc: inertPrefix + "every listener is PLAINTEXT; a map that sends a listener name other than Kafka's own to another protocol is refused."},
		inert("inter.broker.listener.name", typeString, "", static, "brokers reach each other on the one listener."),
		inert("early.start.listeners", typeString, "", static, "the listener starts once the broker is ready."),

		inert("connection.failed.authentication.delay.ms", typeInt, "100", static, "there is no authentication."),
	}
	defs = append(defs, securityDefaultsOnly()...)
	defs = append(defs, shareGroupDefs()...)
	defs = append(defs, groupLimitDefs()...)
	defs = append(defs, remoteLogManagerDefs()...)
	return defs
}

// kafkaProtocolMap is listener.security.protocol.map's default in Kafka.
const kafkaProtocolMap = "SASL_SSL:SASL_SSL,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT"

// plaintextListeners accepts a listener list whose every entry is
// PLAINTEXT://host:port (or a name Kafka's default map sends to PLAINTEXT).
func plaintextListeners(v string) error {
	for _, l := range strings.Split(v, ",") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		name, addr, ok := strings.Cut(l, "://")
		if !ok || addr == "" {
			return fmt.Errorf("listener %q is not NAME://host:port", l)
		}
		if !strings.EqualFold(name, "PLAINTEXT") {
			return fmt.Errorf("listener %q: only PLAINTEXT listeners are supported by Sluice (TLS and SASL are not yet)", l)
		}
	}
	return nil
}

// plaintextProtocolMap accepts Kafka's default map, or any map that sends
// every listener name to PLAINTEXT.
func plaintextProtocolMap(v string) error {
	if v == kafkaProtocolMap {
		return nil
	}
	for _, kv := range strings.Split(v, ",") {
		name, proto, ok := strings.Cut(strings.TrimSpace(kv), ":")
		if !ok || name == "" {
			return fmt.Errorf("entry %q is not NAME:PROTOCOL", kv)
		}
		if !strings.EqualFold(proto, "PLAINTEXT") {
			return fmt.Errorf("listener %s maps to %s: only PLAINTEXT is supported by Sluice (TLS and SASL are not yet)", name, proto)
		}
	}
	return nil
}

// securityDefaultsOnly are Kafka's TLS and SASL settings, accepted only at
// Kafka's defaults: a keystore or a JAAS config asks for security Sluice
// does not have yet, and accepting it silently would leave the operator
// believing the cluster is secured.
func securityDefaultsOnly() []configDef {
	type d struct {
		name string
		typ  configType
		def  string
	}
	var out []configDef
	for _, x := range []d{
		{"ssl.keystore.location", typeString, ""}, {"ssl.keystore.password", typePassword, ""},
		{"ssl.keystore.type", typeString, "JKS"}, {"ssl.key.password", typePassword, ""},
		{"ssl.keystore.key", typePassword, ""}, {"ssl.keystore.certificate.chain", typePassword, ""},
		{"ssl.truststore.location", typeString, ""}, {"ssl.truststore.password", typePassword, ""},
		{"ssl.truststore.type", typeString, "JKS"}, {"ssl.truststore.certificates", typePassword, ""},
		{"ssl.protocol", typeString, "TLSv1.3"}, {"ssl.enabled.protocols", typeList, "TLSv1.2,TLSv1.3"},
		{"ssl.cipher.suites", typeList, ""}, {"ssl.endpoint.identification.algorithm", typeString, "https"},
		{"ssl.keymanager.algorithm", typeString, "SunX509"}, {"ssl.trustmanager.algorithm", typeString, "PKIX"},
		{"ssl.provider", typeString, ""}, {"ssl.secure.random.implementation", typeString, ""},
		{"ssl.engine.factory.class", typeClass, ""}, {"ssl.principal.mapping.rules", typeString, "DEFAULT"},
		{"ssl.allow.dn.changes", typeBoolean, "false"}, {"ssl.allow.san.changes", typeBoolean, "false"},
		{"sasl.mechanism.inter.broker.protocol", typeString, "GSSAPI"}, {"sasl.jaas.config", typePassword, ""},
		{"sasl.kerberos.service.name", typeString, ""}, {"sasl.kerberos.kinit.cmd", typeString, "/usr/bin/kinit"},
		{"sasl.kerberos.min.time.before.relogin", typeLong, "60000"}, {"sasl.kerberos.principal.to.local.rules", typeList, "DEFAULT"},
		{"sasl.kerberos.ticket.renew.jitter", typeDouble, "0.05"}, {"sasl.kerberos.ticket.renew.window.factor", typeDouble, "0.8"},
		{"sasl.login.class", typeClass, ""}, {"sasl.login.callback.handler.class", typeClass, ""},
		{"sasl.server.callback.handler.class", typeClass, ""}, {"sasl.client.callback.handler.class", typeClass, ""},
		{"sasl.server.max.receive.size", typeInt, "524288"},
		{"sasl.oauthbearer.jwks.endpoint.url", typeString, ""}, {"sasl.oauthbearer.token.endpoint.url", typeString, ""},
		{"sasl.oauthbearer.expected.audience", typeList, ""}, {"sasl.oauthbearer.expected.issuer", typeString, ""},
		{"principal.builder.class", typeClass, "org.apache.kafka.common.security.authenticator.DefaultKafkaPrincipalBuilder"},
		{"super.users", typeString, ""}, {"allow.everyone.if.no.acl.found", typeBoolean, "false"},
	} {
		out = append(out, configDef{name: x.name, typ: x.typ, def: x.def, readOnly: true,
			validate: onlyDefault(x.def, "TLS, SASL and ACLs"),
			doc:      "Security is not supported yet; only Kafka's default is accepted."})
	}
	return out
}

// remoteLogManagerDefs are Kafka's tiered-storage manager settings,
// accepted without effect (remote.log.storage.system.enable stays false).
func remoteLogManagerDefs() []configDef {
	const static = true
	why := "there is no tiered storage."
	return []configDef{
		inert("remote.log.manager.thread.pool.size", typeInt, "2", static, why),
		inert("remote.log.manager.task.interval.ms", typeLong, "30000", static, why),
		inert("remote.log.storage.manager.class.name", typeString, "", static, why),
		inert("remote.log.storage.manager.class.path", typeString, "", static, why),
		inert("remote.log.metadata.manager.class.name", typeString, "org.apache.kafka.server.log.remote.metadata.storage.TopicBasedRemoteLogMetadataManager", static, why),
		inert("remote.log.metadata.manager.listener.name", typeString, "", static, why),
		inert("remote.log.index.file.cache.total.size.bytes", typeLong, "1073741824", static, why),
		inert("remote.log.reader.threads", typeInt, "10", static, why),
		inert("remote.log.reader.max.pending.tasks", typeInt, "100", static, why),
	}
}
