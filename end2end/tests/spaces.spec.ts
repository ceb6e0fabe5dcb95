import { expect, test, type Browser, type Page } from "@playwright/test";

// The operator's console: sign in with the account key, create a space, show a model to
// everyone, and see who is in the room, live. `scripts/test.sh` creates the account and passes
// its id and key.
const account = process.env.PARALLAX_E2E_ACCOUNT ?? "";
const key = process.env.PARALLAX_E2E_KEY ?? "";

async function hydrated(page: Page) {
  await expect(page.locator(".app[data-hydrated=true]")).toBeVisible();
}

async function signedIn(browser: Browser, size = { width: 1280, height: 800 }): Promise<Page> {
  const page = await (await browser.newContext({ viewport: size })).newPage();
  await page.goto("/sign-in");
  await page.getByLabel("Account id").fill(account);
  await page.getByLabel("Account key").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page).toHaveURL(/\/spaces$/);
  await hydrated(page);
  return page;
}

test.beforeAll(() => {
  expect(account, "PARALLAX_E2E_ACCOUNT is set by scripts/test.sh").not.toBe("");
});

test("a wrong account key is refused with a clear message", async ({ page }) => {
  await page.goto("/sign-in");
  await page.getByLabel("Account id").fill(account);
  await page.getByLabel("Account key").fill("not-the-key");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page).toHaveURL(/\/sign-in\?error=/);
  await expect(page.getByRole("alert")).toContainText("do not match");
  // Not signed in: the console says so instead of showing someone's spaces.
  await page.goto("/spaces");
  await hydrated(page);
  await expect(page.getByRole("alert")).toContainText("not signed in");
});

test("a tablet creates a space, shows a model to everyone and sees the room live", async ({ browser }) => {
  // A fresh name, so the test can run again against the same server.
  const room = `review-${Date.now().toString(36)}`;
  const tablet = await signedIn(browser);
  await tablet.getByLabel("Name").fill(room);
  await tablet.getByLabel("Template").selectOption("review");
  await tablet.getByRole("button", { name: "Create space" }).click();
  await expect(tablet).toHaveURL(new RegExp(`/spaces/${room}$`));
  await expect(tablet.getByRole("status")).toHaveText("Live");
  await expect(tablet.getByLabel("Join code")).toHaveText(/^\d{6}$/);
  const roster = tablet.getByRole("complementary", { name: "Members" });
  await expect(roster.locator(".member")).toHaveCount(1);
  await expect(roster.locator(".member").first()).toHaveAttribute("data-status", "active");
  await expect(roster.locator(".member .badge")).toHaveText("arbiter");

  // The catalog, with thumbnails from our renderer; showing a model marks it for everyone.
  await expect(tablet.locator(".model-card")).toHaveCount(3);
  await tablet.getByRole("button", { name: /^Show Spur gear.* to everyone$/ }).click();
  await expect(tablet.locator('.model-card[data-model="gear"]')).toHaveClass(/showing/);
  await expect(tablet.getByRole("button", { name: /^Show Spur gear.* to everyone$/ })).toHaveText(
    "Showing to everyone",
  );

  // A second tablet joins: the first sees it arrive; in a review space only the arbiter
  // selects, and the second tablet is told why.
  const second = await signedIn(browser);
  await second.goto(`/spaces/${room}`);
  await hydrated(second);
  await expect(second.getByRole("status")).toHaveText("Live");
  await expect(roster.locator(".member")).toHaveCount(2);
  await expect(second.getByRole("note")).toContainText("only the arbiter");
  await expect(second.locator('.model-card[data-model="gear"]')).toHaveClass(/showing/);

  // The arbiter's next choice reaches the second tablet live.
  await tablet.getByRole("button", { name: "Show Stepped shaft to everyone" }).click();
  await expect(second.locator('.model-card[data-model="shaft"]')).toHaveClass(/showing/);

  // The space is listed on the console with its join code.
  await tablet.goto("/spaces");
  await hydrated(tablet);
  const card = tablet.locator(`.space-card[data-space="${room}"]`);
  await expect(card).toContainText("2 members");
  await expect(card).toContainText("showing shaft");
});
