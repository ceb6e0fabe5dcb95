import { defineConfig } from "@playwright/test";

// Runs against a Parallax server that scripts/test.sh starts (PARALLAX_URL), in Debian's Chromium:
// Playwright cannot download its own browser on these machines.
// scripts/e2e.sh serves it over https at parallax.test, which Chromium maps to 127.0.0.1, with
// the server's certificate authority trusted in an NSS database under PARALLAX_BROWSER_HOME.
const baseURL = process.env.PARALLAX_URL ?? "https://localhost:3000";

export default defineConfig({
  testDir: "./tests",
  timeout: 30_000,
  expect: { timeout: 5_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [["list"]],
  outputDir: "test-results",
  use: {
    baseURL,
    trace: "retain-on-failure",
    screenshot: "only-on-failure",
    launchOptions: {
      executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
      env: { ...process.env, HOME: process.env.PARALLAX_BROWSER_HOME ?? process.env.HOME ?? "" },
      args: [
        "--host-resolver-rules=MAP parallax.test 127.0.0.1, MAP evil.example 127.0.0.1",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    },
  },
});
