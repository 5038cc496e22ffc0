// The NHS.UK design system's components (menus, error summary focus, ...): progressive
// enhancement only; every page works without JavaScript.
import { initAll } from "/assets/nhsuk/nhsuk-frontend.min.js";

document.body.classList.add("js-enabled", "nhsuk-frontend-supported");
initAll();

// A page restored from the browser's back/forward cache (Back after signing out, say) is fetched
// again, so the server decides whether it may still be shown: pages are sent no-store, but
// Chromium keeps them in that cache all the same.
window.addEventListener("pageshow", (event) => {
  if (event.persisted) window.location.reload();
});
