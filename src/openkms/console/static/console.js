// openkms console: a little progressive enhancement. Every page works without it.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Copy buttons: <button data-copy="text">.
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(button.dataset.copy);
        const label = button.textContent;
        button.textContent = "Copied";
        setTimeout(() => { button.textContent = label; }, 1500);
      } catch (_) {
        /* clipboard not available (plain http): the text is on the page to select */
      }
    });
  }

  // Escape closes an open menu (Region, Key actions, Preferences) and gives its summary the focus.
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    const open = event.target instanceof Element && event.target.closest("details.popover[open]");
    if (open) {
      open.open = false;
      open.querySelector("summary").focus();
    }
  });

  // Buttons that need a confirmation: <button data-confirm="question">.
  for (const button of document.querySelectorAll("button[data-confirm]")) {
    button.addEventListener("click", (event) => {
      if (!window.confirm(button.dataset.confirm)) event.preventDefault();
    });
  }

  // Create-key wizard, step 1: show the key usages and key specs the chosen key type allows,
  // and the parts of an origin (the imported-key acknowledgement, the external key store) only for it.
  const form = document.querySelector("form.wizard-body");
  if (form && form.querySelector("input[name=key_type][type=radio]")) {
    const checked = (name) => (form.querySelector(`input[name=${name}]:checked`) || {}).value;
    const refresh = () => {
      const type = checked("key_type");
      for (const label of form.querySelectorAll("label[data-key-types]")) {
        const allowed = label.dataset.keyTypes.split(" ").includes(type);
        label.hidden = !allowed;
        label.querySelector("input").disabled = !allowed;
      }
      const staleUsage = form.querySelector("input[name=key_usage]:checked");
      if (staleUsage && staleUsage.disabled) staleUsage.checked = false;
      let usage = checked("key_usage");
      if (!usage) {
        const first = form.querySelector("label[data-key-types]:not([hidden]) input");
        if (first) { first.checked = true; usage = first.value; }
      }
      const pair = `${type}:${usage}`;
      let visible = 0;
      for (const label of form.querySelectorAll("label[data-allowed]")) {
        const allowed = label.dataset.allowed.split(" ").includes(pair);
        label.hidden = !allowed;
        label.querySelector("input").disabled = !allowed;
        if (allowed) visible += 1;
      }
      const staleSpec = form.querySelector("input[name=key_spec]:checked");
      if (staleSpec && staleSpec.disabled) staleSpec.checked = false;
      if (!checked("key_spec")) {
        const first = form.querySelector("label[data-allowed]:not([hidden]) input");
        if (first) first.checked = true;
      }
      const specs = form.querySelector("fieldset.specs");
      if (specs) specs.hidden = visible <= 1;
      for (const part of form.querySelectorAll("[data-show-for-origin]")) {
        part.hidden = checked("origin") !== part.dataset.showForOrigin;
      }
    };
    form.addEventListener("change", refresh);
    refresh();
  }

  // Schedule deletion: the confirmation sentence follows the waiting period.
  const days = document.querySelector("[data-days-input]");
  const daysText = document.querySelector("[data-days-text]");
  if (days && daysText) {
    days.addEventListener("input", () => { daysText.textContent = days.value || "…"; });
  }

  // JSON editors: say at once whether the text is JSON (the service still checks the policy).
  for (const editor of document.querySelectorAll("textarea[data-json-editor]")) {
    const status = editor.parentElement.querySelector("[data-json-status]");
    if (!status) continue;
    editor.addEventListener("input", () => {
      try {
        JSON.parse(editor.value);
        status.textContent = "";
      } catch (error) {
        status.textContent = "This is not valid JSON yet: " + error.message;
      }
    });
  }
});
