// Loads the HTML report in a real browser (Debian's chromium, headless) and prints what the
// page shows as JSON: the charts, the summary rows, the credits and the incident rows. Keeps
// a full-page screenshot and the page printed to A4 PDF next to each other.
//
//   node report_page.mjs URL TOKEN OUT_DIR
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';

const [url, token, out] = process.argv.slice(2);
mkdirSync(out, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox'],
});
try {
  const context = await browser.newContext({ extraHTTPHeaders: { Authorization: `Bearer ${token}` } });
  const page = await context.newPage();
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));
  const response = await page.goto(url, { waitUntil: 'load' });
  await page.screenshot({ path: `${out}/report.png`, fullPage: true });
  await page.pdf({ path: `${out}/report.pdf`, format: 'A4', printBackground: true });
  const shown = await page.evaluate(() => ({
    title: document.title,
    charts: [...document.querySelectorAll('svg.chart')].map((s) => ({
      kind: s.getAttribute('class').replace('chart ', ''),
      days: Number(s.dataset.days),
      marks: s.querySelectorAll('rect, polyline').length,
      width: s.getBoundingClientRect().width,
    })),
    summary: [...document.querySelectorAll('table.summary tr[data-service]')].map((tr) => ({
      service: tr.dataset.service,
      credit: tr.querySelector('td.credit').textContent,
    })),
    incidents: document.querySelectorAll('table.incidents tr').length,
    findings: document.querySelectorAll('table.findings tr').length,
    scripts: document.querySelectorAll('script').length,
  }));
  console.log(JSON.stringify({ status: response.status(), requests, ...shown }));
} finally {
  await browser.close();
}
