// The step inline of the workflow form: when a step's type changes, redraw its
// params form (django-jsonform) from that type's JSON schema, and show the
// type's description under the select. Descriptions are set with textContent.
const source = document.getElementById("dagflow-step-types");
const TYPES = source ? JSON.parse(source.textContent) : {};
const ANY = { type: "object", properties: {}, additionalProperties: true };

function paramsInput(select) {
  return document.getElementById(select.id.replace(/step_type$/, "params"));
}

function showDescription(select) {
  let help = select.parentElement.querySelector(".dagflow-type-help");
  if (!help) {
    help = document.createElement("div");
    help.className = "help dagflow-type-help";
    select.after(help);
  }
  const type = TYPES[select.value];
  help.textContent = type ? type.description : "";
}

function switchSchema(select) {
  const input = paramsInput(select);
  if (!input || !window.reactJsonForm) return;
  const type = TYPES[select.value];
  const schema = type ? type.schema : ANY;
  let current = {};
  try {
    current = JSON.parse(input.value || "{}") || {};
  } catch {
    current = {};
  }
  // Keep the values the new schema also knows; start the rest from its defaults.
  const props = schema.properties || {};
  const data = { ...(type ? type.defaults : {}) };
  for (const [key, value] of Object.entries(current)) {
    if (key in props) data[key] = value;
  }
  const config = JSON.parse(input.dataset.djangoJsonform);
  const old = input.previousElementSibling;
  const fresh = document.createElement("div");
  for (const attr of old.attributes) fresh.setAttribute(attr.name, attr.value);
  fresh.id = `${input.id}_jsonform`;
  old.replaceWith(fresh);
  input.value = JSON.stringify(data);
  config.schema = schema;
  config.data = data;
  config.errorMap = {};
  config.containerId = fresh.id;
  config.dataInputId = input.id;
  input.dataset.djangoJsonform = JSON.stringify({ ...config, data: JSON.stringify(data) });
  window.reactJsonForm.createForm(config).render();
  input.dataset.dagflowType = select.value;
}

document.addEventListener("change", (event) => {
  const select = event.target;
  if (!(select instanceof HTMLSelectElement) || !select.classList.contains("dagflow-step-type")) return;
  showDescription(select);
  switchSchema(select);
});

function init() {
  for (const select of document.querySelectorAll("select.dagflow-step-type")) {
    if (!select.id.includes("__prefix__")) showDescription(select);
  }
}
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
else init();
