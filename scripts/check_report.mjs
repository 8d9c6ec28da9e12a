// Opens self-contained HTML reports in headless Chromium and checks that they render offline:
// no console error, no page error, no failed request, no request that leaves the machine
// (anything but file:, data: or blob:), every <img> decoded, every in-page anchor (#id) resolved.
// Saves a full-page screenshot at 1280 px wide and prints one JSON line per report.
//
// Usage: node scripts/check_report.mjs REPORT.html SCREENSHOT.png [REPORT.html SCREENSHOT.png ...]
// playwright-core is found through NODE_PATH (scripts/check_report.sh sets it to its cache).
// Exit status: 0 if every report passes, 1 if one fails, 2 on bad usage.
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

// ES modules ignore NODE_PATH, CommonJS require honours it.
const { chromium } = createRequire(import.meta.url)('playwright-core');

const args = process.argv.slice(2);
if (args.length === 0 || args.length % 2) {
  console.error('usage: node scripts/check_report.mjs REPORT.html SCREENSHOT.png [...]');
  process.exit(2);
}
const isLocal = (url) => /^(file|data|blob|about):/.test(url);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let allOk = true;
for (let i = 0; i < args.length; i += 2) {
  const report = args[i], screenshot = resolve(args[i + 1]);
  const r = { report, ok: false, images: 0, broken_images: [], broken_anchors: [],
    console_errors: [], page_errors: [], failed_requests: [], external_requests: [],
    height: 0, screenshot: null };
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on('console', (m) => { if (m.type() === 'error') r.console_errors.push(m.text()); });
  page.on('pageerror', (e) => r.page_errors.push(String(e.message || e)));
  page.on('requestfailed', (q) => r.failed_requests.push(`${q.url().slice(0, 120)} (${q.failure()?.errorText})`));
  page.on('request', (q) => { if (!isLocal(q.url())) r.external_requests.push(q.url()); });
  // Abort outgoing requests at once instead of waiting on the network (they still fail, and count).
  await page.route((url) => !isLocal(url.href), (route) => route.abort('blockedbyclient'));
  try {
    await page.goto(pathToFileURL(resolve(report)).href, { waitUntil: 'load', timeout: 60_000 });
    const found = await page.evaluate(async () => {
      const imgs = [...document.images];
      // Lazy images load only when scrolled to: make them eager and wait (5 s at most each).
      await Promise.all(imgs.map((img) => {
        if (img.loading === 'lazy') img.loading = 'eager';
        return img.complete ? null : new Promise((ok) => {
          img.addEventListener('load', ok); img.addEventListener('error', ok); setTimeout(ok, 5000);
        });
      }));
      const broken = imgs.flatMap((img, i) => (img.complete && img.naturalWidth > 0) ? []
        : [`#${i} ${img.alt ? JSON.stringify(img.alt) : '(no alt)'} src=${img.getAttribute('src')?.slice(0, 60)}`]);
      const anchors = [...document.querySelectorAll('a[href^="#"]')].map((a) => a.getAttribute('href'))
        .filter((h) => {
          const id = decodeURIComponent(h.slice(1));
          return id !== '' && id.toLowerCase() !== 'top' && !document.getElementById(id)
            && document.getElementsByName(id).length === 0;
        });
      return { images: imgs.length, broken, anchors: [...new Set(anchors)],
        height: document.documentElement.scrollHeight };
    });
    r.images = found.images; r.broken_images = found.broken;
    r.broken_anchors = found.anchors; r.height = found.height;
    mkdirSync(dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot, fullPage: true });
    r.screenshot = screenshot;
  } catch (e) {
    r.page_errors.push(`check failed: ${String(e.message || e).split('\n')[0]}`);
  }
  await page.close();
  r.ok = ['broken_images', 'broken_anchors', 'console_errors', 'page_errors',
    'failed_requests', 'external_requests'].every((k) => r[k].length === 0);
  allOk &&= r.ok;
  console.log(JSON.stringify(r));
}
await browser.close();
process.exit(allOk ? 0 : 1);
