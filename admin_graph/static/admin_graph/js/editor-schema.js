// A params form generated from a step type's JSON schema.
//
// Honours the schemas django-jsonform honours for step params: objects with
// properties (required ones marked), enums as a select, arrays of anything
// with add/remove, numbers and integers, booleans and strings. Anything it
// cannot draw as fields (no properties, anyOf, ...) is edited as JSON text.
// Every text reaches the page through textContent or a property, never HTML.

let counter = 0;

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "className") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  if (text !== undefined) node.textContent = text;
  return node;
}

function clone(value) {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

export function schemaType(schema, value) {
  let type = schema.type;
  if (Array.isArray(type)) type = type.find((t) => t !== "null") || type[0];
  if (type) return type;
  if (schema.properties) return "object";
  if (schema.items) return "array";
  if (schema.enum) return typeof schema.enum[0];
  return undefined;
}

// Return the value a new field (or array item) starts with.
export function defaultFor(schema) {
  if (!schema || typeof schema !== "object") return null;
  if (schema.default !== undefined) return clone(schema.default);
  if (schema.enum) return clone(schema.enum[0]);
  switch (schemaType(schema)) {
    case "object": {
      const value = {};
      for (const [name, sub] of Object.entries(schema.properties || {})) {
        if (sub.default !== undefined || (schema.required || []).includes(name)) {
          value[name] = defaultFor(sub);
        }
      }
      return value;
    }
    case "array": return [];
    case "boolean": return false;
    case "integer":
    case "number": return schema.minimum ?? 0;
    case "string": return "";
    default: return null;
  }
}

function title(schema, name) {
  return schema.title || (name === undefined ? "" : String(name));
}

// Render a control for `value` under `schema`; `set(v)` stores a new value
// (undefined removes an optional property).
function field(schema, value, set, ctx, required) {
  schema = schema && typeof schema === "object" ? schema : {};
  if (Array.isArray(schema.enum)) return enumField(schema, value, set, ctx, required);
  switch (schemaType(schema, value)) {
    case "object":
      return schema.properties ? objectField(schema, value, set, ctx) : jsonField(value, set, ctx);
    case "array": return arrayField(schema, value, set, ctx);
    case "boolean": return booleanField(value, set, ctx);
    case "integer":
    case "number": return numberField(schema, value, set, ctx);
    case "string": return stringField(schema, value, set, ctx);
    default: return jsonField(value, set, ctx);
  }
}

function objectField(schema, value, set, ctx) {
  const obj = value && typeof value === "object" && !Array.isArray(value) ? { ...value } : {};
  const box = el("div", { className: "dagflow-schema-object" });
  const required = schema.required || [];
  for (const [name, sub] of Object.entries(schema.properties)) {
    const isRequired = required.includes(name);
    const row = el("div", { className: "dagflow-field", "data-field": name });
    const id = `dagflow-f${++counter}`;
    const label = el("label", { for: id, className: isRequired ? "required" : undefined }, title(sub, name));
    if (isRequired) label.append(el("span", { className: "dagflow-required", "aria-hidden": "true" }, " *"));
    const control = field(sub, obj[name], (v) => {
      if (v === undefined) delete obj[name];
      else obj[name] = v;
      set(obj);
    }, ctx, isRequired);
    const target = control.matches("input, select, textarea") ? control : control.querySelector("input, select, textarea");
    if (target && !target.id) target.id = id;
    row.append(label, control);
    if (sub.description) row.append(el("div", { className: "help" }, sub.description));
    box.append(row);
  }
  return box;
}

function arrayField(schema, value, set, ctx) {
  const items = schema.items && typeof schema.items === "object" ? schema.items : {};
  const arr = Array.isArray(value) ? value.slice() : [];
  const box = el("div", { className: "dagflow-schema-array" });
  const list = el("ol", { className: "dagflow-array-items" });
  const add = el("button", { type: "button", className: "button dagflow-array-add", disabled: ctx.disabled }, `Add ${items.title || "item"}`);
  const draw = () => {
    list.replaceChildren();
    arr.forEach((item, index) => {
      const li = el("li", { className: "dagflow-array-item" });
      li.append(field(items, item, (v) => { arr[index] = v; set(arr); }, ctx, true));
      const remove = el("button", { type: "button", className: "button dagflow-array-remove", disabled: ctx.disabled, "aria-label": `Remove item ${index + 1}` }, "Remove");
      remove.addEventListener("click", () => {
        arr.splice(index, 1);
        set(arr);
        draw();
      });
      li.append(remove);
      list.append(li);
    });
    add.disabled = ctx.disabled || (schema.maxItems !== undefined && arr.length >= schema.maxItems);
  };
  add.addEventListener("click", () => {
    arr.push(defaultFor(items));
    set(arr);
    draw();
  });
  draw();
  box.append(list, add);
  return box;
}

function enumField(schema, value, set, ctx, required) {
  const select = el("select", { disabled: ctx.disabled });
  const current = schema.enum.findIndex((v) => JSON.stringify(v) === JSON.stringify(value));
  if (!required || current < 0) select.append(el("option", { value: "" }, "---------"));
  schema.enum.forEach((v, i) => {
    const label = (schema.enumNames && schema.enumNames[i]) ?? (typeof v === "string" ? v : JSON.stringify(v));
    select.append(el("option", { value: String(i) }, label));
  });
  select.value = current < 0 ? "" : String(current);
  select.addEventListener("change", () => {
    set(select.value === "" ? undefined : clone(schema.enum[Number(select.value)]));
  });
  return select;
}

function booleanField(value, set, ctx) {
  const input = el("input", { type: "checkbox", disabled: ctx.disabled });
  input.checked = value === true;
  input.addEventListener("change", () => set(input.checked));
  return input;
}

function numberField(schema, value, set, ctx) {
  const integer = schemaType(schema) === "integer";
  const input = el("input", {
    type: "number",
    className: "vIntegerField",
    step: integer ? "1" : "any",
    min: schema.minimum,
    max: schema.maximum,
    disabled: ctx.disabled,
  });
  input.value = typeof value === "number" ? String(value) : "";
  input.addEventListener("input", () => {
    const text = input.value.trim();
    if (text === "") return set(undefined);
    const number = Number(text);
    if (Number.isNaN(number) || (integer && !Number.isInteger(number))) {
      input.setCustomValidity(integer ? "Enter a whole number." : "Enter a number.");
      return;
    }
    input.setCustomValidity("");
    set(number);
  });
  return input;
}

function stringField(schema, value, set, ctx) {
  const long = schema.format === "textarea" || (schema.maxLength || 0) > 255;
  const input = long
    ? el("textarea", { rows: 3, className: "vLargeTextField", disabled: ctx.disabled })
    : el("input", { type: "text", className: "vTextField", maxlength: schema.maxLength, disabled: ctx.disabled });
  input.value = typeof value === "string" ? value : value === undefined || value === null ? "" : String(value);
  input.addEventListener("input", () => set(input.value === "" ? undefined : input.value));
  return input;
}

function jsonField(value, set, ctx) {
  const box = el("div", { className: "dagflow-json" });
  const area = el("textarea", { rows: 4, className: "vLargeTextField", spellcheck: "false", disabled: ctx.disabled });
  area.value = value === undefined ? "" : JSON.stringify(value, null, 2);
  const error = el("div", { className: "errornote", hidden: true });
  area.addEventListener("input", () => {
    if (area.value.trim() === "") {
      error.hidden = true;
      return set(undefined);
    }
    try {
      const parsed = JSON.parse(area.value);
      error.hidden = true;
      set(parsed);
    } catch {
      error.textContent = "Not valid JSON yet; the last valid value is kept.";
      error.hidden = false;
    }
  });
  box.append(area, error);
  return box;
}

// Return the form element editing `value` (the params object) under `schema`.
export function renderSchemaForm(schema, value, onChange, { disabled = false } = {}) {
  const ctx = { disabled };
  const root = schema && typeof schema === "object" ? schema : { type: "object" };
  const form = el("div", { className: "dagflow-schema-form" });
  form.append(field(root, value, (v) => onChange(v === undefined ? {} : v), ctx, true));
  return form;
}
