package broker

// TEMPORARY STUB for the integrator to delete: engineer F's
// broker/group_config.go defines groupSettings (with more fields) and
// Broker.groupSettings. Only the fields the dead-letter writer reads are
// here; with this stub no group has a DLQ topic.

// groupSettings is a group's configs resolved over the broker defaults.
type groupSettings struct {
	DLQTopic      string // errors.deadletterqueue.topic.name, "" for none
	DLQCopyRecord bool   // errors.deadletterqueue.copy.record.enable
}

// groupSettings resolves group's configs (stub: the defaults).
func (b *Broker) groupSettings(group string) groupSettings { return groupSettings{} }
