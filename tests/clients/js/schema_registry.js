// Drives @kafkajs/confluent-schema-registry (the JavaScript Schema Registry client and its
// Avro, JSON Schema and Protobuf serializers) for Strom's integration tests. Reads one JSON
// request on stdin, prints one JSON answer on stdout (bytes as base64).
//
// Ops: register {url, subject, type, schema}              -> {id}
//      encode {url, id, value}                            -> {bytes}
//      decode {url, bytes}                                -> {value}
//      latest {url, subject}                              -> {id}
//      error {url, subject, type, schema}                 -> {status, message} of a failed register
'use strict'

const { SchemaRegistry, SchemaType } = require('@kafkajs/confluent-schema-registry')

const TYPES = { AVRO: SchemaType.AVRO, JSON: SchemaType.JSON, PROTOBUF: SchemaType.PROTOBUF }

async function main() {
  const chunks = []
  for await (const chunk of process.stdin) chunks.push(chunk)
  const request = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  const registry = new SchemaRegistry({ host: request.url, retry: { retries: 0 } })
  let answer
  switch (request.op) {
    case 'register': {
      const { id } = await registry.register(
        { type: TYPES[request.type], schema: request.schema },
        { subject: request.subject },
      )
      answer = { id }
      break
    }
    case 'encode': {
      const bytes = await registry.encode(request.id, request.value)
      answer = { bytes: bytes.toString('base64') }
      break
    }
    case 'decode': {
      const value = await registry.decode(Buffer.from(request.bytes, 'base64'))
      answer = { value }
      break
    }
    case 'latest': {
      answer = { id: await registry.getLatestSchemaId(request.subject) }
      break
    }
    case 'error': {
      try {
        await registry.register(
          { type: TYPES[request.type], schema: request.schema },
          { subject: request.subject },
        )
        answer = { status: 0 }
      } catch (e) {
        answer = { status: e.status || -1, message: String(e.message) }
      }
      break
    }
    default:
      throw new Error(`unknown op ${request.op}`)
  }
  process.stdout.write(JSON.stringify(answer) + '\n')
}

main().catch(e => {
  process.stderr.write(`${e.stack || e}\n`)
  process.exit(1)
})
