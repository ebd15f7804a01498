package broker

// Dead-letter queue settings (KIP-1191) and Sluice's admin switch for the
// redrive endpoint.
const (
	// settingDLQPrefix is the prefix every DLQ topic name must start with
	// (Kafka's GroupCoordinatorConfig errors.deadletterqueue.topic.name.prefix).
	settingDLQPrefix = "errors.deadletterqueue.topic.name.prefix"
	// settingDLQAutoCreate lets the broker create a missing DLQ topic on
	// its first write (errors.deadletterqueue.auto.create.topics.enable).
	settingDLQAutoCreate = "errors.deadletterqueue.auto.create.topics.enable"
	// topicConfigDLQEnable is the topic config that opts a topic in as a
	// DLQ topic (errors.deadletterqueue.group.enable): the topic's owner,
	// not the group's, decides whether brokers may write dead letters to it.
	topicConfigDLQEnable = "errors.deadletterqueue.group.enable"
	// settingAdminHTTPWrites enables the admin endpoints that change data
	// (POST /v1/dlq/redrive); read-only endpoints are always served.
	settingAdminHTTPWrites = "admin.http.writes.enable"
)

// dlqBrokerConfigDefs are the broker settings of dead-letter queues.
func dlqBrokerConfigDefs() []configDef {
	return []configDef{
		{name: settingDLQPrefix, typ: typeString, def: "dlq.",
			doc: "Prefix every share group's dead-letter topic name must start with (KIP-1191); empty allows any name but internal (__) topics."},
		{name: settingDLQAutoCreate, typ: typeBoolean, def: "false",
			doc: "Create a missing dead-letter topic on the first dead-letter write, with errors.deadletterqueue.group.enable=true, num.partitions and default.replication.factor (KIP-1191)."},
		{name: settingAdminHTTPWrites, typ: typeBoolean, def: "false",
			doc: "Serve the admin HTTP endpoints that change data (POST /v1/dlq/redrive) on the HTTP listener; off, they answer 403."},
	}
}

// dlqTopicConfigDefs are the topic configs of dead-letter queues.
func dlqTopicConfigDefs() []configDef {
	return []configDef{
		{name: topicConfigDLQEnable, typ: typeBoolean, def: "false",
			doc: "The topic may be a share group's dead-letter topic (KIP-1191); off, dead letters meant for it are archived without a write."},
	}
}
