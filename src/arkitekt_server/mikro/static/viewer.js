// The slice viewer of /mikro/images/<id>/view: asks the server for one plane of the region in
// view (slice.png, rendered from the pyramid level that fits the canvas) and draws it.
// No inline code and no eval: the page's Content-Security-Policy allows scripts from 'self' only.
"use strict";

(() => {
  const root = document.getElementById("viewer");
  if (!root) return;
  const [, , , height, width] = JSON.parse(root.dataset.shape);
  const channels = JSON.parse(root.dataset.channels);
  const canvas = document.getElementById("canvas");
  const context = canvas.getContext("2d");
  // The canvas takes the image's aspect (its longer side 640 px, the shorter at least 64).
  const side = 640;
  canvas.width = width >= height ? side : Math.max(64, Math.round((side * width) / height));
  canvas.height = height >= width ? side : Math.max(64, Math.round((side * height) / width));
  const status = document.getElementById("status");
  const field = (id) => document.getElementById(id);
  const view = { zoom: 1, cy: height / 2, cx: width / 2 };
  let busy = false;
  let again = false;
  let drawn = 0;

  function region() {
    const h = Math.max(1, Math.round(height / view.zoom));
    const w = Math.max(1, Math.round(width / view.zoom));
    const y = Math.min(Math.max(0, Math.round(view.cy - h / 2)), height - h);
    const x = Math.min(Math.max(0, Math.round(view.cx - w / 2)), width - w);
    return { x, y, w, h };
  }

  function query() {
    const r = region();
    const ratio = Math.min(window.devicePixelRatio || 1, 2);
    const params = new URLSearchParams({
      c: field("c").value, t: field("t").value, z: field("z").value,
      x: r.x, y: r.y, w: r.w, h: r.h,
      width: Math.min(2048, Math.round(canvas.width * ratio)),
      height: Math.min(2048, Math.round(canvas.height * ratio)),
    });
    const low = field("low").value;
    const high = field("high").value;
    if (!field("auto").checked && low !== "" && high !== "") {
      params.set("low", low);
      params.set("high", high);
    }
    return { r, params };
  }

  async function fetchAndDraw() {
    const { r, params } = query();
    const answer = await fetch(`slice.png?${params}`, { credentials: "same-origin" });
    if (!answer.ok) {
      let detail = `HTTP ${answer.status}`;
      try {
        const body = await answer.json();
        detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      } catch (_) { /* not JSON */ }
      status.textContent = `cannot show this slice: ${detail}`;
      return;
    }
    const bitmap = await createImageBitmap(await answer.blob());
    const scale = Math.min(canvas.width / r.w, canvas.height / r.h);
    const dw = r.w * scale;
    const dh = r.h * scale;
    context.imageSmoothingEnabled = false;
    context.fillStyle = "#000";
    context.fillRect(0, 0, canvas.width, canvas.height);
    context.drawImage(bitmap, (canvas.width - dw) / 2, (canvas.height - dh) / 2, dw, dh);
    bitmap.close();
    const windowed = (answer.headers.get("X-Mikro-Window") || "").split(" ");
    if (field("auto").checked && windowed.length === 2) {
      field("low").value = windowed[0];
      field("high").value = windowed[1];
    }
    status.textContent = `level ${answer.headers.get("X-Mikro-Level")}, ` +
      `region ${r.w} x ${r.h} px at (${r.x}, ${r.y})`;
    drawn += 1;
    root.dataset.drawn = String(drawn);
  }

  // One request at a time; while one is out, remember that the view changed and ask again.
  async function draw() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      do {
        again = false;
        await fetchAndDraw();
      } while (again);
    } catch (error) {
      status.textContent = `cannot show this slice: ${error}`;
    } finally {
      busy = false;
    }
  }

  function labels() {
    for (const axis of ["z", "t", "c"]) field(`${axis}-value`).textContent = field(axis).value;
    field("channel-name").textContent = channels[Number(field("c").value)] || "";
    field("zoom").textContent = `${view.zoom}x`;
  }

  function changed() { labels(); draw(); }

  for (const axis of ["z", "t", "c"]) field(axis).addEventListener("input", changed);
  field("auto").addEventListener("change", changed);
  for (const id of ["low", "high"]) {
    field(id).addEventListener("change", () => { field("auto").checked = false; changed(); });
  }
  const maxZoom = Math.max(1, 2 ** Math.ceil(Math.log2(Math.max(width, height) / 8)));
  field("zoom-in").addEventListener("click", () => {
    view.zoom = Math.min(maxZoom, view.zoom * 2); changed();
  });
  field("zoom-out").addEventListener("click", () => {
    view.zoom = Math.max(1, view.zoom / 2); changed();
  });
  field("zoom-reset").addEventListener("click", () => {
    view.zoom = 1; view.cy = height / 2; view.cx = width / 2; changed();
  });
  // A click centres the view on that point (and zooms in with the shift key held).
  canvas.addEventListener("click", (event) => {
    const r = region();
    const scale = Math.min(canvas.width / r.w, canvas.height / r.h);
    const box = canvas.getBoundingClientRect();
    const px = (event.clientX - box.left) * (canvas.width / box.width);
    const py = (event.clientY - box.top) * (canvas.height / box.height);
    view.cx = r.x + (px - (canvas.width - r.w * scale) / 2) / scale;
    view.cy = r.y + (py - (canvas.height - r.h * scale) / 2) / scale;
    if (event.shiftKey) view.zoom = Math.min(maxZoom, view.zoom * 2);
    changed();
  });
  changed();
})();
