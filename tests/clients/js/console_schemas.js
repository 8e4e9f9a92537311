// Drives the console's schema-registry parts and the throughput chart in headless Chromium
// (Debian's `chromium`) with playwright-core, for tests/clients/test_console_schemas.py.
// Reads one JSON request on stdin:
//   {base, chromium, screenshots, topic, subject, schemaV2, timeoutMs}
// and prints one JSON answer on stdout: what each step saw, and the screenshots written.
// Offline like js/console_browser.js.
'use strict'

const { chromium } = require('playwright-core')
const path = require('path')

async function main () {
  const input = JSON.parse(require('fs').readFileSync(0, 'utf8'))
  const timeout = input.timeoutMs || 30000
  const browser = await chromium.launch({
    executablePath: input.chromium,
    headless: true,
    timeout,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-default-apps',
      '--disable-sync', '--disable-extensions'],
  })
  const out = { screenshots: [] }
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 800 } })
    page.setDefaultTimeout(timeout)
    const shot = async name => {
      const file = path.join(input.screenshots, `${name}.png`)
      await page.screenshot({ path: file, fullPage: true })
      out.screenshots.push(file)
    }

    // 1. The message browser shows the Avro records decoded, labelled with their schema.
    await page.goto(input.base + `/topics/${input.topic}/0?offset=0`)
    out.browserText = await page.locator('table').last().innerText()
    out.schemaLabels = await page.locator('.schema').allInnerTexts()
    await shot('schemas-1-avro-browser')

    // 2. The schemas page lists the subject; its page shows the version and level.
    await page.goto(input.base + '/schemas')
    out.subjectsText = await page.locator('#subjects').innerText()
    await shot('schemas-2-subjects')
    await page.click(`#subjects a[href="/schemas/${input.subject}"]`)
    out.schemaText = await page.locator('#schema').innerText()
    out.versionBefore = await page.locator('#version').innerText()

    // 3. Register a new version through the UI.
    await page.fill('#register textarea[name=schema]', input.schemaV2)
    await page.click('#register button')
    out.registerOutcome = await page.locator('#outcome').innerText()

    // 4. Change the subject's compatibility level through the UI.
    await page.goto(input.base + `/schemas/${input.subject}`)
    await page.selectOption('#compatibility select[name=compatibility]', 'FULL')
    await page.click('#compatibility button')
    out.compatibilityOutcome = await page.locator('#outcome').innerText()
    await page.goto(input.base + `/schemas/${input.subject}`)
    out.versionAfter = await page.locator('#version').innerText()
    out.levelAfter = await page.locator('#level').innerText()
    out.schemaAfter = await page.locator('#schema').innerText()
    await shot('schemas-3-subject')

    // 5. The topic page's chart moves while a producer runs (started by the test).
    await page.goto(input.base + `/topics/${input.topic}`)
    await page.waitForFunction(() => {
      const now = document.getElementById('throughput-now')
      const samples = Number(now && now.getAttribute('data-samples'))
      const m = now && /records in\/s: ([0-9.]+)/.exec(now.textContent)
      return samples >= 3 && m && Number(m[1]) > 0
    }, null, { timeout })
    out.chartText = await page.locator('#throughput-now').innerText()
    // The canvas has been drawn on: some pixel of a line colour.
    out.chartPixels = await page.evaluate(() => {
      const c = document.getElementById('throughput')
      const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data
      let coloured = 0
      for (let i = 0; i < data.length; i += 4) {
        if (data[i + 3] > 0 && !(data[i] === data[i + 1] && data[i + 1] === data[i + 2])) coloured++
      }
      return coloured
    })
    await shot('schemas-4-chart')
  } finally {
    await browser.close()
  }
  process.stdout.write(JSON.stringify(out) + '\n')
}

main().catch(err => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + '\n')
  process.exit(1)
})
