// nsqjs against our nsqd and nsqlookupd (run by test/nsqjs/nsqjs_test.go).
//
// A Writer publishes over TCP with PUB, MPUB and DPUB; a Reader finds the
// nsqd through nsqlookupd's /lookup, consumes everything, requeues one message
// once and touches another. Both ask for the compression named by COMPRESSION
// (none, deflate or snappy). When every message is finished the script prints
// "consumed" and waits for a line on stdin (the test reads nsqd's /stats
// meanwhile), then closes both and prints a JSON report.
'use strict'
const nsq = require('nsqjs')
const readline = require('readline')

const [host, port] = process.env.NSQD_TCP.split(':')
const topic = process.env.TOPIC
const compression = process.env.COMPRESSION || 'none'
const opts = {deflate: compression === 'deflate', snappy: compression === 'snappy'}
const report = {errors: [], deliveries: [], deferredAfterMs: null}
const mpub = Array.from({length: 10}, (_, i) => `mpub-${i}`)
const want = new Set(['pub', ...mpub, 'dpub'])
const finished = new Set()
let dpubAt = 0

const fail = (what) => (err) => {
  if (err) report.errors.push(`${what}: ${err.message || err}`)
}
setTimeout(() => {
  report.errors.push(`timed out with ${finished.size} of ${want.size} finished`)
  console.log(JSON.stringify(report))
  process.exit(1)
}, Number(process.env.LIMIT_MS || 30000)).unref()

const writer = new nsq.Writer(host, Number(port), opts)
writer.on('error', fail('writer'))
writer.on('ready', () => {
  writer.publish(topic, 'pub', (err) => {
    fail('PUB')(err)
    writer.publish(topic, mpub, (err) => {
      fail('MPUB')(err)
      dpubAt = Date.now()
      // nsqjs 0.13.0's deferPublish passes its message on unwrapped and
      // then requires an array: give it a one-message array
      writer.deferPublish(topic, ['dpub'], 300, (err) => {
        fail('DPUB')(err)
        startReader()
      })
    })
  })
})
writer.connect()

function startReader() {
  const reader = new nsq.Reader(topic, 'js', {
    ...opts,
    lookupdHTTPAddresses: process.env.LOOKUPD_HTTP,
    maxInFlight: 5,
  })
  reader.on('error', fail('reader'))
  reader.on('message', (msg) => {
    const body = msg.body.toString()
    report.deliveries.push({body, attempts: msg.attempts})
    if (body === 'dpub') report.deferredAfterMs = Date.now() - dpubAt
    if (body === 'mpub-3' && msg.attempts === 1) {
      msg.requeue(0, false)
      return
    }
    if (body === 'mpub-4') msg.touch()
    msg.finish()
    finished.add(body)
    if (finished.size === want.size) done(reader)
  })
  reader.connect()
}

function done(reader) {
  // let the last FIN leave before the test looks at nsqd
  setTimeout(() => {
    console.log('consumed')
    const rl = readline.createInterface({input: process.stdin})
    rl.once('line', () => {
      rl.close()
      reader.close()
      writer.close()
      console.log(JSON.stringify(report))
      setTimeout(() => process.exit(report.errors.length ? 1 : 0), 100)
    })
  }, 100)
}
