// Debian's headless Chromium through playwright-core, as every browser test
// here launches it: no browser download, a throwaway profile, nothing but
// the page's own traffic (no background networking, QUIC, sync or updates).

import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

/** A fresh persistent context; `profile` is its directory, for the caller to remove. */
export async function launch(name) {
  const profile = mkdtempSync(join(tmpdir(), `${name}-profile-`));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1100, height: 1000 },
  });
  return { context, profile };
}
