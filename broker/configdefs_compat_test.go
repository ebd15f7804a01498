package broker

import "testing"

// Listener and security settings are accepted as far as Sluice does what
// they ask (PLAINTEXT, no TLS, no SASL) and refused beyond, so a
// server.properties asking for security never starts an unsecured broker.
func TestSettingsListenersAndSecurity(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, value string
		ok          bool
	}{
		{"listeners", "PLAINTEXT://127.0.0.1:9092", true},
		{"listeners", "PLAINTEXT://:9092,plaintext://[::1]:9093", true},
		{"listeners", "SSL://:9093", false},
		{"listeners", "PLAINTEXT://:9092,SASL_PLAINTEXT://:9094", false},
		{"listeners", "localhost:9092", false},
		{"advertised.listeners", "PLAINTEXT://broker-1:9092", true},
		{"advertised.listeners", "SASL_SSL://broker-1:9092", false},
		{"listener.security.protocol.map", kafkaProtocolMap, true},
		{"listener.security.protocol.map", "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT", true},
		{"listener.security.protocol.map", "INTERNAL:PLAINTEXT,EXTERNAL:SSL", false},
		{"ssl.keystore.type", "JKS", true},
		{"ssl.keystore.location", "/etc/kafka/keystore.jks", false},
		{"sasl.jaas.config", "org.apache.kafka.common.security.plain.PlainLoginModule required;", false},
		{"sasl.mechanism.inter.broker.protocol", "GSSAPI", true},
		{"sasl.mechanism.inter.broker.protocol", "PLAIN", false},
		{"group.share.enable", "false", true},
		{"group.share.enable", "true", true}, // removed in Kafka 4.1; share.version governs
		{"remote.log.manager.thread.pool.size", "4", true},
	} {
		_, err := newSettings(map[string]string{tc.name: tc.value})
		if (err == nil) != tc.ok {
			t.Errorf("--set %s=%s: err %v, want accepted %v", tc.name, tc.value, err, tc.ok)
		}
	}
}
