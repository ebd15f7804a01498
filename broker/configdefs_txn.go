package broker

// txnConfigDefs are the transaction coordinator's settings, under Kafka's
// names and defaults (TransactionStateManagerConfig, TransactionLogConfig).
func txnConfigDefs() []configDef {
	return []configDef{
		{name: "transaction.max.timeout.ms", typ: typeInt, def: "900000", validate: atLeast(1), readOnly: true,
			doc: "Largest transaction timeout a producer may ask for; InitProducerId with a larger one gets INVALID_TRANSACTION_TIMEOUT."},
		{name: "transactional.id.expiration.ms", typ: typeInt, def: "604800000", validate: atLeast(1), readOnly: true,
			doc: "A transactional id with no transaction for this long is forgotten."},
		{name: "transaction.state.log.num.partitions", typ: typeInt, def: "50", validate: atLeast(1), readOnly: true,
			doc: "Partitions of __transaction_state."},
		{name: "transaction.state.log.replication.factor", typ: typeShort, def: "3", validate: atLeast(1), readOnly: true,
			doc: "Replication factor of __transaction_state, capped at the live brokers when it is created."},
		{name: "transaction.state.log.min.isr", typ: typeInt, def: "2", validate: atLeast(1), readOnly: true,
			doc: "min.insync.replicas of __transaction_state, capped at its replication factor (so a single broker serves transactions)."},
		{name: "transaction.state.log.segment.bytes", typ: typeInt, def: "104857600", validate: atLeast(14), readOnly: true,
			doc: "segment.bytes of __transaction_state."},
		inert("transaction.state.log.load.buffer.size", typeInt, "5242880", true, "__transaction_state is read in bounded batches."),
		{name: "transaction.abort.timed.out.transaction.cleanup.interval.ms", typ: typeInt, def: "10000", validate: atLeast(1), readOnly: true,
			doc: "How often transactions past their timeout are looked for and aborted."},
		{name: "transaction.remove.expired.transaction.cleanup.interval.ms", typ: typeInt, def: "3600000", validate: atLeast(1), readOnly: true,
			doc: "How often expired transactional ids are removed."},
		{name: "add.partitions.to.txn.retry.backoff.ms", typ: typeInt, def: "20", validate: atLeast(1), readOnly: true,
			doc: "First pause before a partition leader asks the transaction coordinator again to add or verify a partition it answered CONCURRENT_TRANSACTIONS."},
		{name: "add.partitions.to.txn.retry.backoff.max.ms", typ: typeInt, def: "100", validate: atLeast(0), readOnly: true,
			doc: "How long a partition leader keeps retrying an add or verification answered CONCURRENT_TRANSACTIONS before it answers the producer NOT_ENOUGH_REPLICAS."},
		{name: "transaction.partition.verification.enable", typ: typeBoolean, def: "true",
			doc: "Partition leaders check with the transaction coordinator that a partition is in the producer's transaction before appending its first transactional batch (KIP-890)."},
	}
}
