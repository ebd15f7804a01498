'use strict'
// kafkajs client program for Sluice's transaction tests, run by
// integration/txn_kafkajs_test.go with kafkajs installed here by `npm ci`.
// Every mode prints one JSON object per line on stdout and exits non-zero
// on any client error.
//
//   steps   BOOTSTRAP PREFIX                 run the JSON step list on stdin
//   consume BOOTSTRAP TOPIC GROUP LEVEL END  read until END in every partition

// kafkajs 2 warns about its default partitioner on stderr; records here name their partition.
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'

const fs = require('fs')
const { Kafka, logLevel } = require('kafkajs')

const DEADLINE_MS = 120000

function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function newKafka (bootstrap) {
  // Logs go to stderr: stdout carries only the JSON lines.
  const logCreator = () => ({ namespace, level, label, log }) => {
    process.stderr.write(`${label} [${namespace}] ${JSON.stringify(log)}\n`)
  }
  return new Kafka({
    clientId: 'sluice-txn-test',
    brokers: [bootstrap],
    logLevel: logLevel.WARN,
    logCreator,
    retry: { retries: 10 }
  })
}

// steps runs transactional steps read as JSON from stdin: {"op": begin |
// produce | offsets | commit | abort, "txn": NAME, ...}. NAME selects a
// producer with transactionalId PREFIX-NAME. "produce" sends "records"
// ([{p, k, v}]) to "topic" and waits for the acknowledgement, so the order
// of the steps is the order of the records in each partition. "offsets"
// is sendOffsets of "offsets" ([{topic, partition, offset}]) for "group".
async function steps (bootstrap, prefix) {
  const kafka = newKafka(bootstrap)
  const producers = {}
  const open = {}
  for (const st of JSON.parse(fs.readFileSync(0, 'utf8'))) {
    let p = producers[st.txn]
    if (!p) {
      p = kafka.producer({
        transactionalId: `${prefix}-${st.txn}`,
        idempotent: true,
        maxInFlightRequests: 1,
        transactionTimeout: 60000
      })
      await p.connect()
      producers[st.txn] = p
    }
    switch (st.op) {
      case 'begin':
        open[st.txn] = await p.transaction()
        break
      case 'produce':
        await open[st.txn].send({
          topic: st.topic,
          acks: -1,
          messages: st.records.map(r => ({ partition: r.p, key: r.k, value: r.v }))
        })
        break
      case 'offsets': {
        const topics = {}
        for (const o of st.offsets) {
          (topics[o.topic] = topics[o.topic] || []).push({ partition: o.partition, offset: String(o.offset) })
        }
        await open[st.txn].sendOffsets({
          consumerGroupId: st.group,
          topics: Object.entries(topics).map(([topic, partitions]) => ({ topic, partitions }))
        })
        break
      }
      case 'commit':
        await open[st.txn].commit()
        delete open[st.txn]
        break
      case 'abort':
        await open[st.txn].abort()
        delete open[st.txn]
        break
      default:
        throw new Error(`unknown op ${st.op}`)
    }
    emit({ op: st.op, txn: st.txn })
  }
  for (const p of Object.values(producers)) {
    await p.disconnect()
  }
}

// consume reads topic from the beginning in consumer group GROUP at LEVEL
// (read_committed or read_uncommitted) and prints every record until it has
// printed one with value END in every partition.
async function consume (bootstrap, topic, group, level, end) {
  const kafka = newKafka(bootstrap)
  const admin = kafka.admin()
  await admin.connect()
  const md = await admin.fetchTopicMetadata({ topics: [topic] })
  const nparts = md.topics[0].partitions.length
  await admin.disconnect()

  const consumer = kafka.consumer({
    groupId: group,
    readUncommitted: level === 'read_uncommitted',
    maxWaitTimeInMs: 250
  })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  const ended = new Set()
  await new Promise((resolve, reject) => {
    consumer.on(consumer.events.CRASH, e => reject(e.payload.error))
    consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        const v = message.value.toString()
        emit({ p: partition, o: Number(message.offset), k: message.key.toString(), v })
        if (v === end) {
          ended.add(partition)
          if (ended.size === nparts) resolve()
        }
      }
    }).catch(reject)
  })
  await consumer.disconnect()
}

async function main (argv) {
  setTimeout(() => {
    process.stderr.write(`deadline of ${DEADLINE_MS} ms passed\n`)
    process.exit(3)
  }, DEADLINE_MS).unref()
  const [mode, ...args] = argv
  if (mode === 'steps') {
    await steps(args[0], args[1])
  } else if (mode === 'consume') {
    await consume(args[0], args[1], args[2], args[3], args[4])
  } else {
    throw new Error(`unknown mode ${mode}`)
  }
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  err => {
    process.stderr.write(`${err && err.stack ? err.stack : err}\n`)
    process.exit(1)
  })
