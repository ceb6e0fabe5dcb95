import { expect, test, type Page } from "@playwright/test";

// The first slice, as people use it: a tablet picks a model and every open headset shows a
// server-rendered frame of it within a second.

async function hydrated(page: Page) {
  await expect(page.locator(".app[data-hydrated=true]")).toBeVisible();
}

async function openHeadset(page: Page) {
  await page.goto("/headset");
  await hydrated(page);
  await expect(page.locator(".hud .status")).toHaveText("Connected");
}

/** The headset's current frame as PNG pixels, once it shows `model`. */
async function frameOf(page: Page, model: string): Promise<Buffer> {
  const frame = page.locator("img.frame");
  await expect(frame).toHaveAttribute("data-model", model, { timeout: 1_000 });
  // The frame image has loaded (not just its attribute set): it has real pixel dimensions.
  await expect
    .poll(() => frame.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth), {
      timeout: 1_000,
    })
    .toBeGreaterThan(0);
  return frame.screenshot();
}

test("a tablet's choice reaches every headset as a new rendered frame", async ({ browser }) => {
  const tablet = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  const headsets = await Promise.all(
    [0, 1].map(async () => (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage()),
  );

  await tablet.goto("/");
  await hydrated(tablet);
  const cards = tablet.locator(".model-card");
  await expect(cards).toHaveCount(3);
  await expect(cards.first()).toContainText("triangles");
  // Each card shows a thumbnail rendered by the server's renderer, actually loaded.
  for (const thumbnail of await tablet.locator(".model-card img.thumbnail").all()) {
    await expect
      .poll(() => thumbnail.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth))
      .toBe(480);
  }

  for (const headset of headsets) await openHeadset(headset);

  // Start from a known model so "before" is a real frame too.
  await tablet.locator('.model-card[data-model="gear"] button').click();
  const before = await Promise.all(headsets.map((h) => frameOf(h, "gear")));
  await expect(tablet.locator('.model-card[data-model="gear"]')).toHaveClass(/showing/);

  const clicked = Date.now();
  await tablet.locator('.model-card[data-model="bracket"] button').click();
  const after = await Promise.all(headsets.map((h) => frameOf(h, "bracket")));
  const elapsed = Date.now() - clicked;
  expect(elapsed).toBeLessThan(1_000);

  for (let i = 0; i < headsets.length; i++) {
    expect(after[i].equals(before[i]), `headset ${i} shows a different picture`).toBe(false);
    await expect(headsets[i].locator(".hud .model")).toHaveText("Angle bracket");
  }
  // Both headsets were sent the same render of the same selection.
  expect(after[0].equals(after[1])).toBe(true);
  await expect(tablet.locator('.model-card[data-model="bracket"] button')).toHaveText("Showing");
});

test("a headset opened later shows what is already selected", async ({ page, request }) => {
  const selected = await request.put("/v1/selection", { data: { modelId: "shaft" } });
  expect(selected.ok()).toBe(true);
  await openHeadset(page);
  const frame = await frameOf(page, "shaft");
  expect(frame.length).toBeGreaterThan(1_000);
  await expect(page.locator(".hud .model")).toHaveText("Stepped shaft");
});

test("pages look right at tablet and phone sizes", async ({ page }, info) => {
  for (const [name, size] of [
    ["tablet", { width: 1280, height: 800 }],
    ["phone", { width: 390, height: 844 }],
  ] as const) {
    await page.setViewportSize(size);
    await page.goto("/");
    await hydrated(page);
    await expect(page.locator(".model-card").first()).toBeVisible();
    await page.screenshot({ path: info.outputPath(`tablet-console-${name}.png`), fullPage: true });
    await page.goto("/headset");
    await hydrated(page);
    await expect(page.locator("img.frame")).toBeVisible();
    await page.screenshot({ path: info.outputPath(`headset-${name}.png`) });
  }
});
