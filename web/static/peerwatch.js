// The NHS.UK design system's components (menus, error summary focus, ...): progressive
// enhancement only; every page works without JavaScript.
import { initAll } from "/assets/nhsuk/nhsuk-frontend.min.js";

document.body.classList.add("js-enabled", "nhsuk-frontend-supported");
initAll();
