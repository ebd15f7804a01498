package txn

// Encoding of __transaction_state records: Kafka's TransactionLogKey v0 and
// TransactionLogValue v1 through kmsg, so Kafka's tools read Sluice's log
// and a log Kafka wrote loads here (doc.go, "Records").

import (
	"encoding/binary"
	"errors"
	"math"

	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	// keyVersion is TransactionLogKey's only version.
	keyVersion int16 = 0
	// valueVersion is TransactionLogValue v1, the flexible version with
	// the KIP-890 tagged fields, which Kafka writes once
	// transaction.version >= 1.
	valueVersion int16 = 1
)

// errMalformed reports a record LoadFrom skips: a value that does not
// parse, of an unknown version, or naming a state a log never holds.
var errMalformed = errors.New("txn: malformed __transaction_state record")

func recordKey(transactionalID string) []byte {
	k := kmsg.TxnMetadataKey{Version: keyVersion, TransactionalID: transactionalID}
	return k.AppendTo(nil)
}

// recordValue encodes m as TransactionLogValue v1. Empty writes a null
// partition list and the other states a (possibly empty) list, as Kafka's
// TransactionLog.valueToBytes does.
func recordValue(m meta) []byte {
	v := kmsg.NewTxnMetadataValue()
	v.Version = valueVersion
	v.ProducerID = m.producerID
	v.ProducerEpoch = m.epoch
	v.TimeoutMillis = m.timeoutMs
	v.State = m.state
	if m.state != stateEmpty {
		v.Topics = []kmsg.TxnMetadataValueTopic{}
		for i := 0; i < len(m.partitions); {
			t := kmsg.TxnMetadataValueTopic{Topic: m.partitions[i].Topic}
			for ; i < len(m.partitions) && m.partitions[i].Topic == t.Topic; i++ {
				t.Partitions = append(t.Partitions, m.partitions[i].Partition)
			}
			v.Topics = append(v.Topics, t)
		}
	}
	v.LastUpdateTimestamp = m.lastUpdateMs
	v.StartTimestamp = m.startMs
	v.PreviousProducerID = m.prevProducerID
	v.NextProducerID = m.nextProducerID
	v.ClientTransactionVersion = int16(m.tv)
	return v.AppendTo(nil)
}

func stateRecord(transactionalID string, m meta) Record {
	return Record{Key: recordKey(transactionalID), Value: recordValue(m)}
}

func tombstone(transactionalID string) Record {
	return Record{Key: recordKey(transactionalID)}
}

// decodeKey returns the transactional id of a record key; ok is false for
// key versions Kafka would also skip ("UnknownKey").
func decodeKey(key []byte) (id string, ok bool, err error) {
	if len(key) < 2 {
		return "", false, errMalformed
	}
	if int16(binary.BigEndian.Uint16(key)) != keyVersion {
		return "", false, nil
	}
	var k kmsg.TxnMetadataKey
	if err := k.ReadFrom(key); err != nil {
		return "", false, errors.Join(errMalformed, err)
	}
	return k.TransactionalID, true, nil
}

// decodeValue returns the state a value records. dead is true for a Dead
// state, which LoadFrom treats as a tombstone. lastEpoch is not in the log
// and comes back -1, as in Kafka.
func decodeValue(value []byte) (m meta, dead bool, err error) {
	var v kmsg.TxnMetadataValue
	if err := v.ReadFrom(value); err != nil {
		return meta{}, false, errors.Join(errMalformed, err)
	}
	if v.Version < 0 || v.Version > valueVersion {
		return meta{}, false, errMalformed
	}
	switch {
	case v.State == stateDead:
		return meta{}, true, nil
	case v.State < stateEmpty || v.State > stateCompleteAbort:
		return meta{}, false, errMalformed
	}
	m = meta{
		producerID:     v.ProducerID,
		prevProducerID: v.PreviousProducerID,
		nextProducerID: v.NextProducerID,
		epoch:          v.ProducerEpoch,
		lastEpoch:      -1,
		timeoutMs:      v.TimeoutMillis,
		state:          v.State,
		startMs:        v.StartTimestamp,
		lastUpdateMs:   v.LastUpdateTimestamp,
	}
	if tv := v.ClientTransactionVersion; tv > 0 && tv <= math.MaxInt8 {
		m.tv = int8(tv)
	}
	if m.state != stateEmpty {
		var tps []TopicPartition
		for _, t := range v.Topics {
			for _, p := range t.Partitions {
				tps = append(tps, TopicPartition{Topic: t.Topic, Partition: p})
			}
		}
		if len(tps) > 0 {
			m.partitions = unionPartitions(nil, tps)
		}
	}
	return m, false, nil
}
