"""What every page owes everyone: it works from the keyboard alone, every control has a
label, text reads against its background (WCAG AA: a contrast ratio of 4.5 at least,
3 for large text), and nothing is wider than a phone's screen."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from tests.portal.harness import PHONE

# Controls a person fills or presses, without a name a screen reader could say.
UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button, a[href]')]
  .filter(el => el.offsetParent !== null || el.getClientRects().length)
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !el.getAttribute('aria-labelledby') && !(el.textContent || '').trim() && !el.title)
  .map(el => el.outerHTML.slice(0, 120))"""

# Each visible text's colour against the first opaque background behind it.
LOW_CONTRAST = """() => {
  const rgb = s => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
    .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  const background = el => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || c[3] === 1) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const low = [];
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || !el.getClientRects().length) continue;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || el.closest('[aria-hidden=true]')) continue;
    const [a, b] = [lum(rgb(style.color).slice(0, 3)), lum(background(el))].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight) >= 700;
    const large = size >= 24 || (bold && size >= 18.66);
    if (ratio < (large ? 3 : 4.5)) low.push(`${el.tagName} "${el.textContent.trim().slice(0, 40)}" ${ratio.toFixed(2)}`);
  }
  return low;
}"""


async def assert_readable(page: Page, where: str) -> None:
    assert await page.evaluate(UNLABELLED) == [], f"{where}: controls without a label"
    assert await page.evaluate(LOW_CONTRAST) == [], f"{where}: text below WCAG AA contrast"


async def test_every_page_has_labelled_controls_and_readable_contrast_at_both_widths(portal):
    alice, admin = await portal.new_page(), await portal.new_page()
    await portal.sign_in(alice, "alice")
    await portal.sign_in(admin, "admin")
    phone = await portal.new_page(PHONE)
    await portal.sign_in(phone, "dave")
    pages = {
        alice: ["/", "/activate/grp-ops/member", "/requests", "/approvals"],
        admin: ["/admin", "/admin/groups/grp-ops", "/admin/groups/grp-ops/policy/member", "/admin/audit", "/admin/reconcile"],
        phone: ["/", "/activate/grp-dev/member", "/requests", "/approvals", "/admin", "/admin/audit"],
    }
    for page, paths in pages.items():
        for path in paths:
            await page.goto(portal.url(path))
            await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
            await assert_readable(page, path)
            if page is phone:
                overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 0, f"{path}: {overflow} px wider than a phone"


async def test_a_request_made_from_the_keyboard_alone(portal):
    """alice signs in, finds her activation and sends it without a mouse: Tab to move,
    typing to fill, Enter to follow a link or send a form."""
    page = await portal.new_page()
    await page.goto(portal.url("/"))
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    await page.get_by_label("User", exact=True).focus()
    await page.keyboard.type("alice")
    await page.keyboard.press("Tab")
    await page.keyboard.type(await portal.codes.code("alice"))
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="My access")).to_be_visible()

    activate = page.get_by_role("link", name="Activate member of grp-ops")
    for _ in range(40):  # Tab until the link has the focus
        await page.keyboard.press("Tab")
        if await activate.evaluate("el => el === document.activeElement"):
            break
    else:
        raise AssertionError("Tab never reached 'Activate member of grp-ops'")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Activate member of grp-ops")).to_be_visible()

    async def tab_to(label: str) -> None:
        field = page.get_by_label(label, exact=True)
        for _ in range(20):
            if await field.evaluate("el => el === document.activeElement"):
                return
            await page.keyboard.press("Tab")
        raise AssertionError(f"Tab never reached {label!r}")

    await tab_to("Duration")
    await page.keyboard.press("Control+A")
    await page.keyboard.type("1h")
    await tab_to("Justification")
    await page.keyboard.type("INC-42 database failover")
    await tab_to("Ticket")
    await page.keyboard.type("INC-42")
    await page.keyboard.press("Enter")  # sends the form from a text field
    await expect(page.get_by_role("heading", name="Request for member of grp-ops")).to_be_visible()
    await expect(page.get_by_role("status").filter(has_text=re.compile("^Pending approval$"))).to_be_visible()
