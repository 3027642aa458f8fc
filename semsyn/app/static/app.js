// semsyn-app page: a canvas of class ids at the model's size, painted with brush, fill and eraser,
// rendered by the server after each stroke. The canvas never holds colours that need reading back:
// `ids` is the label map, and the visible canvas is drawn from it, so every pixel is exactly one class.
"use strict";

(() => {
  const UNPAINTED = 255;
  const RENDER_DELAY_MS = 150; // debounce: a burst of strokes or clicks becomes one render
  const UNDO_DEPTH = 40;
  const DISPLAY_PX = 352; // the longer side of the canvas and the image on screen
  const $ = (id) => document.getElementById(id);

  const state = {
    info: null,
    H: 0,
    W: 0,
    ids: null, // Uint16Array(H * W): the label map
    cls: 0,
    tool: "brush",
    background: UNPAINTED, // what the eraser paints
    seed: 0,
    scale: 1,
    styleToken: null,
    classSeeds: {},
    undo: [],
    image: null, // the last rendered PNG (a Blob)
    renders: 0,
    timer: null,
    inFlight: false,
    pending: false,
    stroke: null,
  };

  // -- messages -------------------------------------------------------------------------------
  function showError(text) {
    const box = $("message");
    box.textContent = text;
    box.hidden = false;
  }
  function clearError() {
    $("message").hidden = true;
    $("message").textContent = "";
  }
  function setStatus(text) {
    $("status").textContent = text;
  }
  async function errorText(resp) {
    try {
      const body = await resp.json();
      if (body && body.error) return body.error;
    } catch (e) {
      /* not JSON: fall through to the status line */
    }
    return `the server answered ${resp.status} ${resp.statusText}`;
  }
  async function post(url, body) {
    try {
      const resp = await fetch(url, { method: "POST", body, headers: { "Content-Type": "application/octet-stream" } });
      if (!resp.ok) {
        showError(await errorText(resp));
        return null;
      }
      return resp;
    } catch (e) {
      showError(`the server cannot be reached (${e.message}): is semsyn-app still running?`);
      return null;
    }
  }

  // -- drawing the label map ------------------------------------------------------------------
  let colourTable = null; // RGBA per id; unpainted pixels get a checkerboard instead
  function draw() {
    const { W, H, ids } = state;
    const ctx = $("paint").getContext("2d");
    const img = ctx.createImageData(W, H);
    const cell = Math.max(2, Math.round(Math.max(W, H) / 32));
    for (let y = 0, p = 0; y < H; y++) {
      for (let x = 0; x < W; x++, p++) {
        const id = ids[p];
        const o = p * 4;
        if (id < state.info.classes.length) {
          img.data[o] = colourTable[id * 4];
          img.data[o + 1] = colourTable[id * 4 + 1];
          img.data[o + 2] = colourTable[id * 4 + 2];
        } else {
          const shade = ((Math.floor(x / cell) + Math.floor(y / cell)) & 1) ? 205 : 240;
          img.data[o] = img.data[o + 1] = img.data[o + 2] = shade;
        }
        img.data[o + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
  }

  function pushUndo() {
    state.undo.push(state.ids.slice());
    if (state.undo.length > UNDO_DEPTH) state.undo.shift();
  }

  function paintValue() {
    return state.tool === "eraser" ? state.background : state.cls;
  }

  function stamp(cx, cy, value) {
    const { W, H, ids } = state;
    const size = Number($("brush-size").value);
    const r = size / 2;
    const x0 = Math.floor(cx - r + 0.5);
    const y0 = Math.floor(cy - r + 0.5);
    for (let dy = 0; dy < size; dy++) {
      for (let dx = 0; dx < size; dx++) {
        const px = x0 + dx;
        const py = y0 + dy;
        if (px < 0 || py < 0 || px >= W || py >= H) continue;
        const ex = px + 0.5 - cx;
        const ey = py + 0.5 - cy;
        if (size > 2 && ex * ex + ey * ey > r * r) continue; // a disc; sizes 1-2 are squares
        ids[py * W + px] = value;
      }
    }
  }

  function strokeTo(x, y) {
    const s = state.stroke;
    const dist = Math.hypot(x - s.x, y - s.y);
    const step = Math.max(0.5, Number($("brush-size").value) / 4);
    const n = Math.max(1, Math.ceil(dist / step));
    for (let i = 1; i <= n; i++) stamp(s.x + ((x - s.x) * i) / n, s.y + ((y - s.y) * i) / n, s.value);
    s.x = x;
    s.y = y;
    draw();
  }

  function floodFill(x, y, value) {
    const { W, H, ids } = state;
    const start = Math.floor(y) * W + Math.floor(x);
    const target = ids[start];
    if (target === value) return false;
    const stack = [start];
    while (stack.length) {
      const p = stack.pop();
      if (ids[p] !== target) continue;
      // Scanline: fill the whole run, queue the runs above and below.
      let left = p;
      while (left % W > 0 && ids[left - 1] === target) left--;
      let right = p;
      while (right % W < W - 1 && ids[right + 1] === target) right++;
      for (let q = left; q <= right; q++) {
        ids[q] = value;
        if (q >= W && ids[q - W] === target) stack.push(q - W);
        if (q < (H - 1) * W && ids[q + W] === target) stack.push(q + W);
      }
    }
    return true;
  }

  function canvasPoint(event) {
    const rect = $("paint").getBoundingClientRect();
    return {
      x: Math.min(state.W - 1e-3, Math.max(0, ((event.clientX - rect.left) * state.W) / rect.width)),
      y: Math.min(state.H - 1e-3, Math.max(0, ((event.clientY - rect.top) * state.H) / rect.height)),
    };
  }

  function onPointerDown(event) {
    if (event.button !== 0) return;
    const { x, y } = canvasPoint(event);
    if (state.tool === "fill") {
      pushUndo();
      if (floodFill(x, y, state.cls)) {
        draw();
        scheduleRender();
      } else {
        state.undo.pop();
      }
      return;
    }
    pushUndo();
    $("paint").setPointerCapture(event.pointerId);
    state.stroke = { x, y, value: paintValue() };
    stamp(x, y, state.stroke.value);
    draw();
  }
  function onPointerMove(event) {
    if (!state.stroke) return;
    const { x, y } = canvasPoint(event);
    strokeTo(x, y);
  }
  function onPointerUp(event) {
    if (!state.stroke) return;
    const { x, y } = canvasPoint(event);
    strokeTo(x, y);
    state.stroke = null;
    scheduleRender();
  }

  // -- rendering ------------------------------------------------------------------------------
  // #result's data-busy is "true" from a change until the render of the latest canvas has landed
  // (or been refused): what a person waits for, and what the browser test waits on.
  function setBusy(busy) {
    $("result").dataset.busy = String(busy);
  }

  function scheduleRender(delay = RENDER_DELAY_MS) {
    clearTimeout(state.timer);
    setBusy(true);
    state.timer = setTimeout(render, delay);
  }

  async function render() {
    state.timer = null;
    if (state.inFlight) {
      state.pending = true; // the answer in flight is already stale: render again when it lands
      return;
    }
    state.inFlight = true;
    state.pending = false;
    const params = new URLSearchParams({ seed: String(state.seed), scale: String(state.scale) });
    if (state.styleToken) params.set("style", state.styleToken);
    const seeds = Object.entries(state.classSeeds).map(([c, s]) => `${c}:${s}`);
    if (seeds.length) params.set("class_seeds", seeds.join(","));
    try {
      const resp = await post(`/api/render?${params}`, state.ids.slice().buffer);
      // A refused render leaves the last image up, faded: it no longer matches the canvas.
      if (!resp) $("result").classList.add("stale");
      if (resp) {
        const blob = await resp.blob();
        const ms = resp.headers.get("X-Render-Ms");
        const img = $("result");
        const old = img.src;
        img.src = URL.createObjectURL(blob);
        await img.decode();
        if (old.startsWith("blob:")) URL.revokeObjectURL(old);
        state.image = blob;
        state.renders += 1;
        img.dataset.renders = String(state.renders);
        clearError();
        img.classList.remove("stale");
        $("result-caption").textContent =
          `Synthesized image (${img.naturalWidth}x${img.naturalHeight}, seed ${state.seed}, ${ms} ms)`;
      }
    } finally {
      state.inFlight = false;
      if (state.pending) render();
      else if (state.timer === null) setBusy(false);
    }
  }

  // -- controls -------------------------------------------------------------------------------
  function selectClass(cls) {
    state.cls = cls;
    for (const b of document.querySelectorAll(".swatch")) {
      b.setAttribute("aria-checked", String(Number(b.dataset.class) === cls));
    }
    updateNotes();
  }
  function selectTool(tool) {
    state.tool = tool;
    for (const b of document.querySelectorAll("#tool-buttons button")) {
      b.setAttribute("aria-pressed", String(b.dataset.tool === tool));
    }
  }
  function className(id) {
    return id < state.info.classes.length ? state.info.classes[id].name : "unknown";
  }
  function updateNotes() {
    $("eraser-note").textContent = state.info.dontcare
      ? "The eraser marks pixels unknown."
      : `The eraser paints the background class (${className(state.background)}); "New" sets it.`;
    const own = Object.keys(state.classSeeds).map((c) => className(Number(c)));
    $("class-style-note").textContent = own.length ? `Own styles: ${own.join(", ")}` : "";
  }
  function randomSeed() {
    return Math.floor(Math.random() * 2147483647);
  }
  function download(blob, name) {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }
  function baseName() {
    return (state.info.name || "semsyn").replace(/[^A-Za-z0-9_.-]+/g, "_");
  }

  async function uploadLabel(file) {
    const resp = await post("/api/label", await file.arrayBuffer());
    if (!resp) return;
    const ids = new Uint16Array(await resp.arrayBuffer());
    pushUndo();
    state.ids.set(ids);
    draw();
    const note = resp.headers.get("X-Semsyn-Note");
    setStatus(`Loaded ${file.name}${note ? ` (${note})` : ""}.`);
    clearError();
    scheduleRender(0);
  }

  async function uploadStyle(file) {
    const resp = await post("/api/style", await file.arrayBuffer());
    if (!resp) return;
    state.styleToken = (await resp.json()).token;
    const preview = $("style-preview");
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
    $("style-remove").hidden = false;
    scheduleRender(0);
  }

  function wire() {
    const canvas = $("paint");
    canvas.addEventListener("pointerdown", onPointerDown);
    canvas.addEventListener("pointermove", onPointerMove);
    canvas.addEventListener("pointerup", onPointerUp);
    canvas.addEventListener("pointercancel", onPointerUp);
    for (const b of document.querySelectorAll("#tool-buttons button")) {
      b.addEventListener("click", () => selectTool(b.dataset.tool));
    }
    $("brush-size").addEventListener("input", () => {
      $("brush-size-value").textContent = $("brush-size").value;
    });
    $("new-canvas").addEventListener("click", () => {
      pushUndo();
      state.ids.fill(state.cls);
      if (!state.info.dontcare) state.background = state.cls;
      updateNotes();
      draw();
      scheduleRender(0);
    });
    $("clear-canvas").addEventListener("click", () => {
      pushUndo();
      state.ids.fill(UNPAINTED);
      draw();
      scheduleRender(0);
    });
    $("undo").addEventListener("click", undo);
    $("label-file").addEventListener("change", async (e) => {
      const file = e.target.files[0];
      e.target.value = "";
      if (file) await uploadLabel(file);
    });
    $("seed").addEventListener("change", () => {
      state.seed = Math.max(0, Math.floor(Number($("seed").value) || 0));
      scheduleRender(0);
    });
    $("reroll").addEventListener("click", reroll);
    $("style-file").addEventListener("change", async (e) => {
      const file = e.target.files[0];
      e.target.value = "";
      if (file) await uploadStyle(file);
    });
    $("style-remove").addEventListener("click", () => {
      state.styleToken = null;
      $("style-preview").hidden = true;
      $("style-remove").hidden = true;
      scheduleRender(0);
    });
    $("class-reroll").addEventListener("click", () => {
      state.classSeeds[state.cls] = randomSeed();
      updateNotes();
      scheduleRender(0);
    });
    $("class-reset").addEventListener("click", () => {
      state.classSeeds = {};
      updateNotes();
      scheduleRender(0);
    });
    $("scale").addEventListener("change", () => {
      state.scale = Number($("scale").value);
      scheduleRender(0);
    });
    $("download-ids").addEventListener("click", () => exportLabel("ids"));
    $("download-colour").addEventListener("click", () => exportLabel("colour"));
    $("download-image").addEventListener("click", () => {
      if (state.image) download(state.image, `${baseName()}_seed${state.seed}.png`);
      else showError("nothing rendered yet: paint or upload a label map first");
    });
    document.addEventListener("keydown", (e) => {
      if (e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement) return;
      if ((e.ctrlKey || e.metaKey) && e.key === "z") {
        e.preventDefault();
        undo();
      } else if (!e.ctrlKey && !e.metaKey && !e.altKey) {
        const tool = { b: "brush", f: "fill", e: "eraser" }[e.key];
        if (tool) selectTool(tool);
        if (e.key === "r") reroll();
      }
    });
  }

  function undo() {
    const last = state.undo.pop();
    if (!last) return;
    state.ids.set(last);
    draw();
    scheduleRender();
  }
  function reroll() {
    state.seed = randomSeed();
    $("seed").value = String(state.seed);
    scheduleRender(0);
  }
  async function exportLabel(format) {
    const resp = await post(`/api/export?format=${format}`, state.ids.slice().buffer);
    if (resp) download(await resp.blob(), `${baseName()}_label_${format}.png`);
  }

  // -- start ----------------------------------------------------------------------------------
  async function init() {
    let info;
    try {
      info = await (await fetch("/api/info")).json();
    } catch (e) {
      showError(`cannot load the model's description from the server (${e.message})`);
      return;
    }
    state.info = info;
    [state.H, state.W] = info.size;
    $("model-name").textContent = info.name;
    $("model-facts").textContent =
      `${info.size[1]}x${info.size[0]} · ${info.classes.length} classes · ${info.device}`;

    const canvas = $("paint");
    canvas.width = state.W;
    canvas.height = state.H;
    const displayWidth = state.W >= state.H ? DISPLAY_PX : Math.round((DISPLAY_PX * state.W) / state.H);
    for (const el of [canvas, $("result")]) {
      el.style.width = `${displayWidth}px`;
      el.style.aspectRatio = `${state.W} / ${state.H}`;
    }

    colourTable = new Uint8Array(info.classes.length * 4);
    const palette = $("palette");
    for (const c of info.classes) {
      colourTable.set([...c.color, 255], c.id * 4);
      const b = document.createElement("button");
      b.type = "button";
      b.className = "swatch";
      b.setAttribute("role", "radio");
      b.dataset.class = String(c.id);
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.style.background = `rgb(${c.color.join(",")})`;
      b.append(chip, document.createTextNode(c.name));
      b.addEventListener("click", () => selectClass(c.id));
      palette.appendChild(b);
    }

    const longest = Math.max(state.H, state.W);
    const size = $("brush-size");
    size.max = String(Math.max(2, Math.round(longest / 4)));
    size.value = String(Math.max(1, Math.round(longest / 16)));
    $("brush-size-value").textContent = size.value;

    $("style-image-controls").hidden = !info.features.style_image;
    $("class-style-controls").hidden = !info.features.class_style;
    $("scale-controls").hidden = info.features.scales.length < 2;
    for (const s of info.features.scales) {
      const o = document.createElement("option");
      o.value = String(s);
      o.textContent = `${s}x (${state.W * s}x${state.H * s})`;
      $("scale").appendChild(o);
    }

    // Models with an "unknown" class start unpainted; the others start as one field of the first class.
    state.background = info.dontcare ? UNPAINTED : 0;
    state.ids = new Uint16Array(state.W * state.H).fill(state.background);
    selectClass(0);
    selectTool("brush");
    wire();
    draw();
    document.body.dataset.ready = "true";
    if (!info.dontcare) scheduleRender(0);
    else setStatus("Pick a class and paint, or upload a label map.");
  }

  init();
})();
