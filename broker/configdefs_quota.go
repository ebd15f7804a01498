package broker

// quotaConfigDefs are the quota window settings (KIP-13, KIP-599), read
// once at start-up as in Kafka.
func quotaConfigDefs() []configDef {
	return []configDef{
		{name: "quota.window.num", typ: typeInt, def: "11", validate: atLeast(1), readOnly: true,
			doc: "Samples kept of client byte-rate and request quotas; rates are measured over at least this many minus one windows."},
		{name: "quota.window.size.seconds", typ: typeInt, def: "1", validate: atLeast(1), readOnly: true,
			doc: "Length of one client quota sample."},
		{name: "controller.quota.window.num", typ: typeInt, def: "11", validate: atLeast(1), readOnly: true,
			doc: "Samples of the controller mutation quota; its burst is this many minus one windows at the quota."},
		{name: "controller.quota.window.size.seconds", typ: typeInt, def: "1", validate: atLeast(1), readOnly: true,
			doc: "Length of one controller mutation quota sample."},
	}
}
