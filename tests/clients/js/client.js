// Drives kafkajs for Strom's integration tests. Reads one JSON request on stdin, prints one
// JSON answer on stdout (bytes as base64); kafkajs' own logs go to stderr. Every wait is
// bounded: the request carries timeoutMs, and pytest kills the process on its own timeout.
//
// Ops: produce {topic, codec, idempotent, records: [{key, value, headers: [[k, v]]}]}
//      consume {topic, count, groupId}            (kafkajs consumes only through a group)
//      create {topic, partitions, configs: {k: v}}
//      metadata {topic} | offsets {topic} | offsetsByTimestamp {topic, timestamp}
//      createPartitions {topic, count} | deleteRecords {topic, partition, offset}
//      describeConfigs {topic}
//      transaction {topic, transactionalId, commit: [values], abort: [values]}
//                  one transaction of `commit` committed, then one of `abort` aborted
'use strict'

const {
  Kafka,
  CompressionTypes,
  CompressionCodecs,
  ConfigResourceTypes,
  Partitioners,
  logLevel,
} = require('kafkajs')
const SnappyCodec = require('kafkajs-snappy')
const lz4 = require('lz4-napi')
const zstd = require('@mongodb-js/zstd')

// kafkajs ships gzip only; the other codecs are registered here. Kafka's LZ4 is the frame
// format with independent blocks (lz4-napi's frame default); zstd is plain zstd frames.
CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
CompressionCodecs[CompressionTypes.LZ4] = () => ({
  compress: encoder => lz4.compressFrame(encoder.buffer),
  decompress: buffer => lz4.decompressFrame(buffer),
})
CompressionCodecs[CompressionTypes.ZSTD] = () => ({
  compress: encoder => zstd.compress(encoder.buffer, 3),
  decompress: buffer => zstd.decompress(buffer),
})

const CODECS = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
}

const stderrLogger = () => ({ namespace, level, log }) => {
  process.stderr.write(`${level} ${namespace} ${log.message} ${JSON.stringify(log)}\n`)
}

const b64 = buf => (buf === null || buf === undefined ? null : Buffer.from(buf).toString('base64'))
const unb64 = s => (s === null ? null : Buffer.from(s, 'base64'))

function withTimeout(promise, ms, what) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

async function produce(kafka, req) {
  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    idempotent: Boolean(req.idempotent),
    maxInFlightRequests: req.idempotent ? 1 : undefined,
  })
  await producer.connect()
  try {
    const messages = req.records.map(r => ({
      key: unb64(r.key),
      value: unb64(r.value),
      headers: Object.fromEntries(r.headers.map(([k, v]) => [Buffer.from(k, 'base64').toString(), unb64(v)])),
    }))
    const result = await producer.send({
      topic: req.topic,
      compression: CODECS[req.codec],
      acks: -1,
      timeout: req.timeoutMs,
      messages,
    })
    return { result: result.map(r => ({ partition: r.partition, baseOffset: Number(r.baseOffset), error: r.errorCode })) }
  } finally {
    await producer.disconnect()
  }
}

async function transaction(kafka, req) {
  const producer = kafka.producer({
    transactionalId: req.transactionalId,
    idempotent: true,
    maxInFlightRequests: 1,
  })
  await producer.connect()
  try {
    for (const [values, commit] of [[req.commit, true], [req.abort, false]]) {
      const txn = await producer.transaction()
      await txn.send({ topic: req.topic, acks: -1, messages: values.map(v => ({ value: v })) })
      if (commit) await txn.commit()
      else await txn.abort()
    }
    return { ok: true }
  } finally {
    await producer.disconnect()
  }
}

async function consume(kafka, req) {
  const consumer = kafka.consumer({ groupId: req.groupId, maxWaitTimeInMs: 200, sessionTimeout: 10000 })
  const records = []
  await consumer.connect()
  try {
    await consumer.subscribe({ topic: req.topic, fromBeginning: true })
    let done
    const enough = new Promise(resolve => { done = resolve })
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        records.push({
          partition,
          offset: Number(message.offset),
          timestamp: Number(message.timestamp),
          key: b64(message.key),
          value: b64(message.value),
          headers: Object.entries(message.headers || {}).flatMap(([k, v]) =>
            (Array.isArray(v) ? v : [v]).map(one => [b64(Buffer.from(k)), b64(one)])),
        })
        if (records.length >= req.count) done()
      },
    })
    await withTimeout(enough, req.timeoutMs, 'consume').catch(() => {})
    return { records }
  } finally {
    await consumer.disconnect()
  }
}

async function adminOp(kafka, req) {
  const admin = kafka.admin()
  await admin.connect()
  try {
    switch (req.op) {
      case 'create':
        return {
          created: await admin.createTopics({
            waitForLeaders: true,
            timeout: req.timeoutMs,
            topics: [{
              topic: req.topic,
              numPartitions: req.partitions,
              replicationFactor: 1,
              configEntries: Object.entries(req.configs || {}).map(([name, value]) => ({ name, value })),
            }],
          }),
        }
      case 'metadata': {
        const md = await admin.fetchTopicMetadata({ topics: [req.topic] })
        return { topics: md.topics.map(t => ({ name: t.name, partitions: t.partitions.map(p => ({ partition: p.partitionId, leader: p.leader, replicas: p.replicas })) })) }
      }
      case 'offsets':
        return { offsets: (await admin.fetchTopicOffsets(req.topic)).map(o => ({ partition: o.partition, low: Number(o.low), high: Number(o.high) })) }
      case 'offsetsByTimestamp':
        return { offsets: (await admin.fetchTopicOffsetsByTimestamp(req.topic, req.timestamp)).map(o => ({ partition: o.partition, offset: Number(o.offset) })) }
      case 'createPartitions':
        await admin.createPartitions({ timeout: req.timeoutMs, topicPartitions: [{ topic: req.topic, count: req.count }] })
        return { count: req.count }
      case 'deleteRecords':
        // deleteTopicRecords reads leaders from the client's metadata cache; fill it first.
        await admin.fetchTopicMetadata({ topics: [req.topic] })
        await admin.deleteTopicRecords({ topic: req.topic, partitions: [{ partition: req.partition, offset: String(req.offset) }] })
        return { deleted: true }
      case 'describeConfigs': {
        const res = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: req.topic }] })
        const entries = res.resources[0].configEntries
        return { errorCode: res.resources[0].errorCode, configs: Object.fromEntries(entries.map(e => [e.configName, { value: e.configValue, isDefault: e.isDefault, source: e.configSource }])) }
      }
      default:
        throw new Error(`unknown op ${req.op}`)
    }
  } finally {
    await admin.disconnect()
  }
}

async function main() {
  const chunks = []
  for await (const chunk of process.stdin) chunks.push(chunk)
  const req = JSON.parse(Buffer.concat(chunks).toString())
  req.timeoutMs = req.timeoutMs || 30000
  const kafka = new Kafka({
    clientId: 'strom-tests-kafkajs',
    brokers: [req.bootstrap],
    connectionTimeout: 5000,
    requestTimeout: 15000,
    retry: { retries: 3, maxRetryTime: 5000 },
    logLevel: logLevel.WARN,
    logCreator: stderrLogger,
    // TLS and SASL for the security tests: `ssl` holds PEM text (ca, cert, key) or true,
    // `sasl` kafkajs' own { mechanism, username, password }.
    ...(req.ssl ? { ssl: req.ssl } : {}),
    ...(req.sasl ? { sasl: req.sasl } : {}),
  })
  let out
  if (req.op === 'produce') out = await produce(kafka, req)
  else if (req.op === 'consume') out = await consume(kafka, req)
  else if (req.op === 'transaction') out = await transaction(kafka, req)
  else out = await adminOp(kafka, req)
  process.stdout.write(JSON.stringify(out) + '\n')
}

withTimeout(main(), 110000, 'kafkajs client')
  .then(() => process.exit(0))
  .catch(err => {
    process.stderr.write(`error: ${err && err.stack ? err.stack : err}\n`)
    process.exit(1)
  })
