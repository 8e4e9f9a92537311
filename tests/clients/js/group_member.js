// A long-running consumer-group member with kafkajs, driven over stdin/stdout by the group
// tests (tests/clients/group_members.py); same protocol as group_member.py:
//
//   node group_member.js key=value...
//   options: bootstrap, topic, group, client_id, session_timeout_ms, heartbeat_interval_ms,
//            max_s (exit after this many seconds whatever happens)
//   stdout:  {"ev":"assigned"|"revoked","partitions":[..],"assignment":[..]}
//            {"ev":"records","records":[[partition,offset,"key"],..]}
//            {"ev":"committed","offsets":[[partition,next_offset],..]}
//            {"ev":"status","assignment":[..],"generation":null,"member_id":".."}
//            {"ev":"error","message":".."}  {"ev":"closed"}
//   stdin:   commit | status | close
//
// kafkajs' own assigners are named "RoundRobinAssigner", a protocol no other client offers,
// so a group mixing kafkajs with other clients could never agree on one. This member offers
// "range" (Kafka's RangeAssignor, over the standard consumer protocol encoding) instead.

const readline = require('readline')
const { Kafka, logLevel, AssignerProtocol } = require('kafkajs')

const opts = Object.fromEntries(process.argv.slice(2).map(a => {
  const i = a.indexOf('=')
  return [a.slice(0, i), a.slice(i + 1)]
}))

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

// Kafka's RangeAssignor: per topic, members sorted by id, each gets a contiguous range; the
// first (partitions % members) get one more.
const RangeAssigner = ({ cluster }) => ({
  name: 'range',
  version: 0,
  async assign({ members, topics }) {
    const byMember = {}
    const subscribers = {}
    for (const m of members) {
      byMember[m.memberId] = {}
      const meta = AssignerProtocol.MemberMetadata.decode(m.memberMetadata)
      for (const t of meta.topics) (subscribers[t] = subscribers[t] || []).push(m.memberId)
    }
    for (const topic of topics) {
      const ids = (subscribers[topic] || []).sort()
      if (ids.length === 0) continue
      const partitions = cluster.findTopicPartitionMetadata(topic).map(p => p.partitionId).sort((a, b) => a - b)
      const per = Math.floor(partitions.length / ids.length)
      const extra = partitions.length % ids.length
      let start = 0
      ids.forEach((id, i) => {
        const n = per + (i < extra ? 1 : 0)
        byMember[id][topic] = partitions.slice(start, start + n)
        start += n
      })
    }
    return members.map(m => ({
      memberId: m.memberId,
      memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 0, assignment: byMember[m.memberId], userData: Buffer.alloc(0) }),
    }))
  },
  protocol({ topics }) {
    return { name: 'range', metadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics, userData: Buffer.alloc(0) }) }
  },
})

const stderrLogger = () => ({ level, log }) => {
  process.stderr.write(`${JSON.stringify({ level, ...log })}\n`)
}

async function main() {
  const kafka = new Kafka({
    clientId: opts.client_id || 'kafkajs-member',
    brokers: [opts.bootstrap],
    connectionTimeout: 5000,
    requestTimeout: 15000,
    retry: { retries: 10, initialRetryTime: 200, maxRetryTime: 2000 },
    logLevel: logLevel.WARN,
    logCreator: stderrLogger,
  })
  const consumer = kafka.consumer({
    groupId: opts.group,
    sessionTimeout: Number(opts.session_timeout_ms || 6000),
    heartbeatInterval: Number(opts.heartbeat_interval_ms || 500),
    maxWaitTimeInMs: 200,
    partitionAssigners: [RangeAssigner],
  })
  let owned = new Set()
  let memberId = null
  const next = new Map()
  consumer.on(consumer.events.GROUP_JOIN, e => {
    memberId = e.payload.memberId
    const now = new Set((e.payload.memberAssignment[opts.topic] || []).map(Number))
    const revoked = [...owned].filter(p => !now.has(p)).sort((a, b) => a - b)
    const added = [...now].filter(p => !owned.has(p)).sort((a, b) => a - b)
    owned = now
    const assignment = [...owned].sort((a, b) => a - b)
    if (revoked.length) emit({ ev: 'revoked', partitions: revoked, assignment })
    emit({ ev: 'assigned', partitions: added, assignment })
  })
  consumer.on(consumer.events.CRASH, e => emit({ ev: 'error', message: `crash: ${e.payload.error}` }))

  let closing = false
  const close = async () => {
    if (closing) return
    closing = true
    await consumer.disconnect().catch(() => {})
    emit({ ev: 'closed' })
    process.exit(0)
  }
  const commit = async () => {
    const offsets = [...next.entries()].map(([partition, offset]) => ({ topic: opts.topic, partition, offset: String(offset) }))
    try {
      await consumer.commitOffsets(offsets)
      emit({ ev: 'committed', offsets: offsets.map(o => [o.partition, Number(o.offset)]).sort((a, b) => a[0] - b[0]) })
    } catch (err) {
      emit({ ev: 'error', message: `commit: ${err}` })
    }
  }
  // Commands run one at a time, in order.
  let chain = Promise.resolve()
  const rl = readline.createInterface({ input: process.stdin })
  rl.on('line', line => {
    const cmd = line.trim()
    chain = chain.then(async () => {
      if (cmd === 'commit') await commit()
      else if (cmd === 'status') emit({ ev: 'status', assignment: [...owned].sort((a, b) => a - b), generation: null, member_id: memberId })
      else if (cmd === 'close') await close()
    })
  })
  rl.on('close', () => { chain = chain.then(close) })
  setTimeout(close, Number(opts.max_s || 170) * 1000).unref()

  await consumer.connect()
  await consumer.subscribe({ topic: opts.topic, fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      const records = batch.messages.map(m => [batch.partition, Number(m.offset), m.key ? m.key.toString() : ''])
      if (records.length) {
        next.set(batch.partition, records[records.length - 1][1] + 1)
        emit({ ev: 'records', records })
      }
    },
  })
}

main().catch(err => {
  emit({ ev: 'error', message: `fatal: ${err && err.stack ? err.stack : err}` })
  process.exit(1)
})
