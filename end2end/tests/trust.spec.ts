import { expect, test } from "@playwright/test";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";

// Every device in the room trusts Parallax's certificate authority. It is name-constrained: a
// certificate it signs for any other site is refused by the browser, even one signed with its own
// key (as a thief of the key would). scripts/e2e.sh signs one for evil.example and, as the
// control, one for the coordinator's own name; Chromium trusts the authority through NSS.
const forged = process.env.PARALLAX_E2E_FORGED ?? "";

async function serving(name: string): Promise<{ server: Server; port: number }> {
  const server = createServer(
    { key: readFileSync(`${forged}/${name}.key`), cert: readFileSync(`${forged}/${name}.crt`) },
    (_request, response) => response.end(`served as ${name}`),
  );
  await new Promise<void>((listening) => server.listen(0, "127.0.0.1", listening));
  return { server, port: (server.address() as AddressInfo).port };
}

test("the authority devices trust cannot vouch for another site, even signed with its own key", async ({ browser }) => {
  expect(forged, "PARALLAX_E2E_FORGED is set by scripts/e2e.sh").not.toBe("");
  const page = await (await browser.newContext()).newPage();

  const own = new URL(process.env.PARALLAX_URL ?? "https://parallax.test").hostname;
  const control = await serving(own);
  try {
    await page.goto(`https://${own}:${control.port}/`);
    await expect(page.locator("body")).toHaveText(`served as ${own}`);
  } finally {
    control.server.close();
  }

  const evil = await serving("evil.example");
  try {
    let refused = "";
    await page.goto(`https://evil.example:${evil.port}/`).catch((e: Error) => (refused = e.message));
    expect(refused).toMatch(/net::ERR_CERT_/);
    console.log(`a certificate for evil.example signed with the authority's key: ${refused.split("\n")[0]}`);
  } finally {
    evil.server.close();
  }

  // The trust page says what the authority may sign.
  const trust = await (await browser.newContext()).newPage();
  await trust.goto("/trust");
  await expect(trust.locator(".app[data-hydrated=true]")).toBeVisible();
  await expect(trust.getByTestId("authority-scope")).toContainText(own);
});
