// Drives the web console in headless Chromium (Debian's `chromium`) with playwright-core,
// for tests/clients/test_console_browser.py. Reads one JSON request on stdin:
//   {base, chromium, screenshots, topic, value, group, newTopic, timeoutMs}
// and prints one JSON answer on stdout: what each step saw, and the screenshots written.
// Offline: no browser download (playwright-core has none), Chromium's background network
// features off; the page needs nothing but the broker.
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
    args: [
      '--no-sandbox', // the tests run as root in CI
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-default-apps',
      '--disable-sync',
      '--disable-extensions',
    ],
  })
  const out = { screenshots: [] }
  try {
    const page = await browser.newPage()
    page.setDefaultTimeout(timeout)
    const shot = async name => {
      const file = path.join(input.screenshots, `${name}.png`)
      await page.screenshot({ path: file, fullPage: true })
      out.screenshots.push(file)
    }

    // 1. The home page lists the topic a client created, and the group's lag.
    await page.goto(input.base + '/')
    out.topicListed = await page.locator(`a[href="/topics/${input.topic}"]`).count() > 0
    const groupRows = page.locator('tr', { hasText: input.group })
    out.groupRows = await groupRows.count()
    out.groupLagCells = []
    for (let i = 0; i < out.groupRows; i++) {
      const cells = await groupRows.nth(i).locator('td').allInnerTexts()
      out.groupLagCells.push(cells)
    }
    await shot('1-home')

    // 2. The message browser shows the produced record.
    await page.click(`a[href="/topics/${input.topic}"]`)
    await page.click(`a[href="/topics/${input.topic}/0"]`)
    await page.fill('#browse input[name=offset]', '0')
    await page.selectOption('#browse select[name=format]', 'json')
    await page.click('#browse button')
    out.browserText = await page.locator('table').last().innerText()
    await shot('2-browser')

    // 3. Create a topic through the UI.
    await page.goto(input.base + '/')
    await page.fill('#create-topic input[name=name]', input.newTopic)
    await page.fill('#create-topic input[name=partitions]', '2')
    await page.click('#create-topic button')
    out.createOutcome = await page.locator('#outcome').innerText()
    await shot('3-created')

    // 4. Change one of its configs through the UI.
    await page.goto(input.base + `/topics/${input.newTopic}`)
    await page.fill('#set-config input[name=key]', 'retention.ms')
    await page.fill('#set-config input[name=value]', '7200000')
    await page.click('#set-config button')
    out.configOutcome = await page.locator('#outcome').innerText()
    await page.goto(input.base + `/topics/${input.newTopic}`)
    out.topicPage = await page.locator('body').innerText()
    await shot('4-config')
  } finally {
    await browser.close()
  }
  process.stdout.write(JSON.stringify(out) + '\n')
}

main().catch(err => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + '\n')
  process.exit(1)
})
