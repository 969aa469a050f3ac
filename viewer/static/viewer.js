/* One Blueprint 一张蓝图 review-meeting viewer: MVT vector tiles on canvas, legend, cursor coordinates,
 * project search, info panel. Talks only to this service (tiles under /viewer, data under /api/v1). */
(function () {
  "use strict";

  var OB = (window.OneBlueprint = { drawn: {}, state: "init" });
  var VERDICT = {
    pass: ["通过", "Pass"],
    review: ["需审查", "Review"],
    conflict: ["冲突", "Conflict"],
  };
  var RULE = {
    forbidden: ["禁止", "forbidden"],
    conditional: ["有条件", "conditional"],
    allowed: ["允许", "allowed"],
  };
  var STATUS = {
    planning: ["策划中", "Planning"],
    submitted: ["已入库", "Submitted"],
    screened: ["已检测", "Screened"],
    in_review: ["联合审查中", "In joint review"],
    cleared: ["审查通过", "Cleared"],
    rejected: ["审查未通过", "Rejected"],
  };
  var DECISION = {
    approved: ["同意", "Approved"],
    approved_with_conditions: ["有条件同意", "Approved with conditions"],
    rejected: ["不同意", "Rejected"],
    deferred: ["暂缓", "Deferred"],
  };
  var MAY_DECIDE = { reviewer: true, admin: true };
  var MAY_ACK = { planner: true, admin: true };
  // layers.geometry's repair codes (problem, action) in words a planner reads
  var REPAIR = {
    invalid: ["几何无效（自相交等）", "invalid geometry"],
    collapsed: ["无效且修复后无面积", "invalid, no area left"],
    empty: ["空几何", "empty geometry"],
    z_dropped: ["带高程 Z 值", "had Z values"],
    no_polygon: ["不含面", "no polygon"],
    collection: ["几何集合", "geometry collection"],
    make_valid: ["已自动修复为有效面", "made valid"],
    dropped: ["已剔除", "dropped"],
    "dropped Z coordinates": ["已去除 Z 值", "Z dropped"],
    "kept polygonal parts": ["保留其中的面", "polygonal parts kept"],
  };

  function zhEn(table, code) {
    var v = table[code];
    return v ? v[0] + " " + v[1] : String(code === undefined || code === null ? "" : code);
  }

  function esc(value) {
    return String(value === undefined || value === null ? "" : value).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function num(value, digits) {
    var n = Number(value);
    return isFinite(n) ? n.toLocaleString("zh-CN", { minimumFractionDigits: digits, maximumFractionDigits: digits }) : "–";
  }

  function setState(state) {
    OB.state = state;
    document.body.setAttribute("data-ob-state", state);
  }

  /* ---- MVT: a ~70-line protobuf reader for Mapbox Vector Tiles (spec 2.1, polygons) ---- */
  var utf8 = new TextDecoder("utf-8");

  function Pbf(buf) { this.buf = buf; this.pos = 0; this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength); }
  Pbf.prototype.varint = function () {
    var value = 0, shift = 1, b;
    do { b = this.buf[this.pos++]; value += (b & 0x7f) * shift; shift *= 128; } while (b & 0x80);
    return value;
  };
  Pbf.prototype.skip = function (wire) {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.pos += this.varint();
    else if (wire === 5) this.pos += 4;
    else throw new Error("unsupported wire type " + wire);
  };
  Pbf.prototype.fields = function (end, each) {
    while (this.pos < end) {
      var tag = this.varint();
      if (each(tag >> 3, tag & 7) === false) this.skip(tag & 7);
    }
  };
  Pbf.prototype.packed = function () {
    var end = this.varint() + this.pos, out = [];
    while (this.pos < end) out.push(this.varint());
    return out;
  };
  Pbf.prototype.string = function () {
    var len = this.varint(), s = utf8.decode(this.buf.subarray(this.pos, this.pos + len));
    this.pos += len;
    return s;
  };

  function mvtValue(pbf) {
    var end = pbf.varint() + pbf.pos, value = null;
    pbf.fields(end, function (field, wire) {
      if (field === 1) value = pbf.string();
      else if (field === 2) { value = pbf.view.getFloat32(pbf.pos, true); pbf.pos += 4; }
      else if (field === 3) { value = pbf.view.getFloat64(pbf.pos, true); pbf.pos += 8; }
      else if (field === 4 || field === 5) value = pbf.varint();
      else if (field === 6) { var n = pbf.varint(); value = n % 2 ? -(n + 1) / 2 : n / 2; }
      else if (field === 7) value = Boolean(pbf.varint());
      else return false;
    });
    return value;
  }

  function mvtLayer(pbf, end) {
    var layer = { name: "", extent: 4096, features: [], keys: [], values: [] };
    pbf.fields(end, function (field) {
      if (field === 1) layer.name = pbf.string();
      else if (field === 2) {
        var fend = pbf.varint() + pbf.pos, feature = { tags: [], geometry: [] };
        pbf.fields(fend, function (f) {
          if (f === 2) feature.tags = pbf.packed();
          else if (f === 3) feature.type = pbf.varint(); // 1 point, 2 line, 3 polygon
          else if (f === 4) feature.geometry = pbf.packed();
          else return false;
        });
        layer.features.push(feature);
      } else if (field === 3) layer.keys.push(pbf.string());
      else if (field === 4) layer.values.push(mvtValue(pbf));
      else if (field === 5) layer.extent = pbf.varint();
      else return false;
    });
    layer.features.forEach(function (feature) {
      feature.properties = {};
      for (var i = 0; i + 1 < feature.tags.length; i += 2) {
        feature.properties[layer.keys[feature.tags[i]]] = layer.values[feature.tags[i + 1]];
      }
    });
    return layer;
  }

  /* the named layers of one tile: {name: {extent, features: [{properties, geometry}]}} */
  function decodeMvt(buffer) {
    var pbf = new Pbf(new Uint8Array(buffer)), layers = {};
    pbf.fields(pbf.buf.length, function (field) {
      if (field !== 3) return false;
      var end = pbf.varint() + pbf.pos;
      var layer = mvtLayer(pbf, end);
      pbf.pos = end;
      layers[layer.name] = layer;
    });
    return layers;
  }
  OB.decodeMvt = decodeMvt;

  /* trace one MVT polygon feature (command integers, tile units) as a canvas path */
  function tracePath(ctx, geometry, scale) {
    var x = 0, y = 0, i = 0;
    ctx.beginPath();
    while (i < geometry.length) {
      var cmd = geometry[i] & 7, count = geometry[i] >> 3;
      i += 1;
      if (cmd === 7) { ctx.closePath(); continue; }
      for (var k = 0; k < count; k++) {
        var dx = geometry[i], dy = geometry[i + 1];
        x += dx % 2 ? -(dx + 1) / 2 : dx / 2;
        y += dy % 2 ? -(dy + 1) / 2 : dy / 2;
        i += 2;
        if (cmd === 1) ctx.moveTo(x * scale, y * scale); else ctx.lineTo(x * scale, y * scale);
      }
    }
  }

  /* ---- one MVT request per view cell carrying every layer, drawn on one canvas ---- */
  var VectorTiles = L.GridLayer.extend({
    initialize: function (url, specs, options) {
      this._url = url;
      this._specs = specs; // drawing order, bottom to top
      this._shown = {};
      L.GridLayer.prototype.initialize.call(this, options);
    },

    show: function (key, on) {
      this._shown[key] = on;
      this.redraw_();
    },

    createTile: function (coords, done) {
      var tile = L.DomUtil.create("canvas", "ob-tile");
      var size = this.getTileSize();
      var ratio = window.devicePixelRatio || 1;
      tile.width = size.x * ratio;
      tile.height = size.y * ratio;
      tile.style.width = size.x + "px";
      tile.style.height = size.y + "px";
      // 512-pixel cells: cell (x, y) at map zoom z is MVT tile (x, y) of zoom z - 1 (as Mapbox GL does),
      // so a 1600 × 1000 view needs ~15 requests instead of ~40
      var url = this._url.replace("{z}", coords.z - 1).replace("{x}", coords.x).replace("{y}", coords.y);
      var self = this;
      var abort = new AbortController();
      tile._obAbort = abort;
      tile.setAttribute("data-url", url);
      fetch(url, { credentials: "same-origin", signal: abort.signal })
        .then(function (r) { return r.ok ? r.arrayBuffer() : new ArrayBuffer(0); })
        .then(function (buffer) {
          tile._obLayers = decodeMvt(buffer);
          tile._obAbort = null;
          self._draw(tile);
          done(null, tile);
        })
        .catch(function (err) {
          if (err && err.name === "AbortError") return; // cancelled: the tile is gone or will be asked again
          tile._obLayers = {};
          done(null, tile); // an empty tile is better than a broken map
        });
      return tile;
    },

    /* cancel every tile load still in flight (a fly-to: what it was loading is no longer wanted) */
    abortPending: function () {
      var n = 0;
      for (var key in this._tiles) {
        var t = this._tiles[key];
        if (t.el._obAbort) { t.el._obAbort.abort(); this._removeTile(key); n += 1; }
      }
      OB.aborted = (OB.aborted || 0) + n;
      return n;
    },

    _abortLoading: function () {
      // Leaflet calls this when the tile zoom changes: loads for other zooms are dropped
      for (var key in this._tiles) {
        var t = this._tiles[key];
        if (t.coords.z !== this._tileZoom && t.el._obAbort) { t.el._obAbort.abort(); this._removeTile(key); }
      }
    },

    _removeTile: function (key) {
      var t = this._tiles[key];
      if (t && t.el._obAbort) t.el._obAbort.abort();
      L.GridLayer.prototype._removeTile.call(this, key);
    },

    redraw_: function () {
      for (var key in this._tiles) {
        var t = this._tiles[key];
        if (t.el._obLayers) this._draw(t.el);
      }
    },

    _draw: function (canvas) {
      if (!this._map || !canvas._obLayers) return;
      var ctx = canvas.getContext("2d");
      var ratio = canvas.width / this.getTileSize().x;
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      var layers = canvas._obLayers, shown = this._shown, total = 0;
      var tileSize = this.getTileSize().x;
      var counts = {};
      this._specs.forEach(function (spec) {
        var layer = layers[spec.key];
        if (!shown[spec.key] || !layer) return;
        var style = spec.style, scale = tileSize / layer.extent;
        layer.features.forEach(function (feature) {
          tracePath(ctx, feature.geometry, scale);
          if (style.halo) { // a light band under the line: the outline shows on any fill beneath it
            ctx.globalAlpha = 0.9;
            ctx.lineWidth = style.weight + 2.5;
            ctx.strokeStyle = style.halo;
            ctx.setLineDash([]);
            ctx.stroke();
          }
          if (style.fillOpacity > 0) {
            ctx.globalAlpha = style.fillOpacity;
            ctx.fillStyle = style.colour;
            ctx.fill("evenodd");
          }
          ctx.globalAlpha = 1;
          ctx.lineWidth = style.weight;
          ctx.strokeStyle = style.stroke || style.colour;
          ctx.setLineDash(style.dash || []);
          ctx.stroke();
        });
        counts[spec.key] = layer.features.length;
        total += layer.features.length;
      });
      canvas.setAttribute("data-features", String(total));
      canvas.setAttribute("data-layers", Object.keys(counts).join(" "));
      if (!canvas._obCounted) { // OB.drawn: features drawn per layer (first drawing of each tile and layer)
        canvas._obCounted = {};
      }
      Object.keys(counts).forEach(function (k) {
        if (canvas._obCounted[k]) return;
        canvas._obCounted[k] = true;
        OB.drawn[k] = (OB.drawn[k] || 0) + counts[k];
      });
    },
  });

  /* ---- the optional basemap, under everything: raster tiles, or vector tiles in a neutral style ---- */
  var BASEMAP_STYLE = {
    water: { fill: "#d4e3ef", stroke: "#b5cde0" },
    other: { fill: "#ebebe8", stroke: "#cfcfca" },
    line: { stroke: "#b9b9b4" },
  };

  var BasemapVectorTiles = VectorTiles.extend({
    _draw: function (canvas) {
      if (!this._map || !canvas._obLayers) return;
      var ctx = canvas.getContext("2d");
      var size = this.getTileSize().x, ratio = canvas.width / size, drawn = 0;
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      var layers = canvas._obLayers;
      Object.keys(layers).forEach(function (name) { // in the file's order: its own bottom-to-top
        var layer = layers[name], scale = size / layer.extent;
        var area = /water|river|lake|ocean|水/i.test(name) ? BASEMAP_STYLE.water : BASEMAP_STYLE.other;
        layer.features.forEach(function (feature) {
          if (feature.type === 1) return; // points (place names…): the blueprint's own labels are enough
          tracePath(ctx, feature.geometry, scale);
          ctx.setLineDash([]);
          if (feature.type === 3) {
            ctx.fillStyle = area.fill;
            ctx.fill("evenodd");
            ctx.strokeStyle = area.stroke;
            ctx.lineWidth = 0.5;
          } else {
            ctx.strokeStyle = BASEMAP_STYLE.line.stroke;
            ctx.lineWidth = 1;
          }
          ctx.stroke();
          drawn += 1;
        });
      });
      canvas.setAttribute("data-features", String(drawn));
      if (!canvas._obCounted) { canvas._obCounted = true; OB.basemapDrawn = (OB.basemapDrawn || 0) + drawn; }
    },
  });

  /* the basemap the service names (cfg.basemap): none by default, so nothing leaves the service */
  function addBasemap(map, cfg) {
    var b = cfg.basemap;
    if (!b) return null;
    map.createPane("obBasemap").style.zIndex = 150; // under the blueprint's tiles (350) and overlays
    var layer;
    if (b.vector) { // 512-px cells at map zoom z are the file's tiles of zoom z - 1, as for the blueprint
      layer = new BasemapVectorTiles(b.url, [], { pane: "obBasemap", tileSize: 512, maxZoom: 20,
        minNativeZoom: Math.max(1, b.minZoom + 1), maxNativeZoom: b.maxNativeZoom + 1,
        updateWhenIdle: true, updateWhenZooming: false, keepBuffer: 1 });
    } else {
      layer = L.tileLayer(b.url, { pane: "obBasemap", maxZoom: 20, minNativeZoom: b.minZoom,
        maxNativeZoom: b.maxNativeZoom, subdomains: b.subdomains || "abc", attribution: b.attribution });
      layer.on("tileload", function () { OB.basemapDrawn = (OB.basemapDrawn || 0) + 1; });
    }
    layer.addTo(map);
    OB.basemap = layer;
    return layer;
  }

  /* a layer-control entry: switching it shows or hides one named layer of the shared tiles */
  var LayerToggle = L.Layer.extend({
    initialize: function (grid, key) { this._grid = grid; this._key = key; },
    onAdd: function () { this._grid.show(this._key, true); },
    onRemove: function () { this._grid.show(this._key, false); },
  });

  function layerStyle(spec) {
    if (spec.group === "boundary") return { colour: spec.colour, fillOpacity: 0, weight: 2, dash: [6, 4] };
    if (spec.group === "line") return { colour: spec.colour, fillOpacity: 0.45, weight: 1.5 };
    // conflicts: a 2-px dashed outline over a white halo at every zoom; the server sends a conflict too
    // small to see as a 6-px square around it (viewer.tiles.MARKER_PX), so none vanishes at city scale
    if (spec.group === "conflict") return { colour: spec.colour, fillOpacity: 0.35, weight: 2, dash: [4, 2],
                                            halo: "#ffffff" };
    if (spec.group === "parcels") return { colour: spec.colour, fillOpacity: 0.08, weight: 1.5 };
    if (spec.group === "overlay") return { colour: spec.colour, fillOpacity: 0.3, weight: 1, dash: [2, 2] };
    return { colour: spec.colour, fillOpacity: 0.35, weight: 0.5 };
  }

  function label(spec) {
    return '<span class="ob-swatch" style="background:' + esc(spec.colour) + '"></span>' +
      esc(spec.name_zh) + ' <span class="ob-en">' + esc(spec.name_en) + "</span>";
  }

  function addLayers(map, cfg) {
    map.createPane("obTiles").style.zIndex = 350; // above any basemap, below highlights
    var overlays = {};
    var byKey = {};
    var bounds = L.latLngBounds([cfg.bounds[1], cfg.bounds[0]], [cfg.bounds[3], cfg.bounds[2]]).pad(0.05);
    cfg.layers.forEach(function (spec) { spec.style = layerStyle(spec); });
    var url = cfg.tiles.replace("{version}", encodeURIComponent(cfg.version));
    // no tiles while panning or zooming: one request per view cell once the map stands still
    var grid = new VectorTiles(url, cfg.layers, { pane: "obTiles", bounds: bounds, minZoom: 1, maxZoom: 20,
                                                  tileSize: 512, updateWhenIdle: true, updateWhenZooming: false,
                                                  keepBuffer: 1 });
    // "loading" until every tile of the view is drawn (tests and the benchmark wait for "idle")
    grid.on("loading", function () { OB.tilesIdle = false; document.body.setAttribute("data-ob-tiles", "loading"); });
    grid.on("load", function () { OB.tilesIdle = true; document.body.setAttribute("data-ob-tiles", "idle"); });
    grid.addTo(map);
    cfg.layers.forEach(function (spec) {
      var toggle = new LayerToggle(grid, spec.key);
      overlays[label(spec)] = toggle;
      byKey[spec.key] = toggle;
      if (spec.on) toggle.addTo(map);
    });
    var control = L.control.layers({}, overlays, { collapsed: cfg.mode === "workbench", position: "topright" }).addTo(map);
    if (cfg.mode !== "workbench") {
      fitBar(control);
      window.addEventListener("resize", function () { fitBar(control); });
    }
    OB.layers = byKey;
    OB.tiles = grid;
    return byKey;
  }

  /* the top bar wraps before it reaches the open layer list (whose width depends on the catalogue's labels):
   * at 1366 px the list covered the bar's last link */
  function fitBar(control) {
    var bar = document.getElementById("ob-bar");
    if (!bar) return;
    bar.style.maxWidth = "";
    var room = control.getContainer().getBoundingClientRect().left - bar.getBoundingClientRect().left - 10;
    if (room > 200) bar.style.maxWidth = room + "px";
  }

  /* ---- names without a basemap: the boundary layer's areas (districts, the city), labelled ---- */
  function addBoundaryLabels(map, cfg) {
    map.createPane("obLabels").style.zIndex = 460; // above the tiles and the outline, below popups
    map.getPane("obLabels").style.pointerEvents = "none"; // clicks go through to identify
    var group = L.layerGroup().addTo(map);
    var placed = [];
    OB.labels = placed;
    function place() {
      // largest area first (the server's order); a label that would overlap one already shown waits
      // for a closer zoom — at city scale only names that fit are drawn
      var boxes = [];
      placed.forEach(function (item) {
        var p = map.latLngToLayerPoint(item.latlng);
        var w = item.width / 2 + 4, h = 12;
        var box = [p.x - w, p.y - h, p.x + w, p.y + h];
        var clash = boxes.some(function (o) { return box[0] < o[2] && o[0] < box[2] && box[1] < o[3] && o[1] < box[3]; });
        item.shown = !clash;
        item.marker.getElement() && (item.marker.getElement().style.display = clash ? "none" : "");
        if (!clash) boxes.push(box);
      });
      document.body.setAttribute("data-ob-labels", String(boxes.length));
    }
    return getJSON(cfg.labels.replace("{version}", encodeURIComponent(cfg.version))).then(function (data) {
      L.geoJSON(data.outlines, { pane: "obLabels", interactive: false,
        style: { color: "#444", weight: 1.2, opacity: 0.7, dashArray: "8 3 2 3", fill: false } }).addTo(group);
      var measure = document.createElement("canvas").getContext("2d");
      measure.font = "bold 15px \"Noto Sans CJK SC\", \"WenQuanYi Micro Hei\", \"Microsoft YaHei\", sans-serif";
      data.labels.forEach(function (label) {
        var width = measure.measureText(label.name).width;
        var marker = L.marker([label.lat, label.lon], { pane: "obLabels", interactive: false, keyboard: false,
          icon: L.divIcon({ className: "ob-label", html: esc(label.name), iconSize: [width + 8, 22],
                            iconAnchor: [(width + 8) / 2, 11] }) }).addTo(group);
        placed.push({ name: label.name, latlng: L.latLng(label.lat, label.lon), width: width, marker: marker });
      });
      place();
      map.on("zoomend", place);
      return placed;
    }).catch(function () { return placed; }); // no names is still a usable map
  }

  /* ---- legend: the layers currently shown, Chinese first ---- */
  function addLegend(map, cfg, byKey) {
    var legend = L.control({ position: "bottomright" });
    legend.onAdd = function () {
      this._div = L.DomUtil.create("div", "ob-legend");
      return this._div;
    };
    legend.update = function () {
      var rows = cfg.layers.filter(function (s) { return map.hasLayer(byKey[s.key]); }).map(function (s) {
        return "<div>" + label(s) + "</div>";
      });
      this._div.innerHTML = "<b>图例 Legend</b>" + (rows.join("") || "<div>（无图层 no layer）</div>");
    };
    legend.addTo(map);
    legend.update();
    map.on("overlayadd overlayremove", function () { legend.update(); });
  }

  /* ---- cursor coordinates: CGCS2000 lon/lat and Gauss-Krüger easting/northing (proj4js) ---- */
  function addCoordinates(map, cfg) {
    var cgcs2000 = "+proj=longlat +ellps=GRS80 +no_defs"; // CGCS2000 ≈ WGS 84 to a few cm at map scale
    var toGk = proj4(cgcs2000, cfg.workCrs.proj4);
    var box = L.control({ position: "bottomleft" });
    box.onAdd = function () {
      var div = L.DomUtil.create("div", "ob-coords");
      div.id = "ob-coords";
      div.textContent = "坐标 Coordinates";
      return div;
    };
    box.addTo(map);
    map.on("mousemove", function (e) {
      var lon = e.latlng.lng, lat = e.latlng.lat;
      var en = toGk.forward([lon, lat]);
      document.getElementById("ob-coords").innerHTML =
        "CGCS2000 经度 Lon " + lon.toFixed(6) + "° 纬度 Lat " + lat.toFixed(6) + "°<br>" +
        esc(cfg.workCrs.label) + " X(北 N) " + en[1].toFixed(2) + " m  Y(东 E) " + en[0].toFixed(2) + " m";
    });
  }

  /* ---- click: what the blueprint says here (kinds after precedence, source features) ---- */
  function kindLabel(key) {
    var spec = OB.kinds[key];
    return spec ? '<span class="ob-swatch" style="background:' + esc(spec.colour) + '"></span>' + esc(spec.name_zh) +
      ' <span class="ob-en">' + esc(spec.name_en) + "</span>" : esc(key);
  }

  /* a conflict (差异图斑): the two plans, their layers, the area and how precedence resolved it */
  function conflictHtml(c) {
    return '<div class="ob-conflict"><b>规划冲突 Conflict ' + esc(c.conflict_id) + "</b><br>" + kindLabel(c.kind_a) +
      (c.layer_a ? ' <span class="ob-en">（' + esc(c.layer_a) + "）</span>" : "") + " × " + kindLabel(c.kind_b) +
      (c.layer_b ? ' <span class="ob-en">（' + esc(c.layer_b) + "）</span>" : "") +
      "<br>处理 Resolution: " + esc(c.resolution || "") + "<br>面积 Area " + num(c.area_m2, 1) + " m²</div>";
  }

  /* metres covered by 5 screen pixels at the click: a conflict drawn as a marker is found within it */
  function clickRadius(map, e) {
    var p = e.containerPoint;
    var metres = map.distance(map.containerPointToLatLng(p), map.containerPointToLatLng(p.add([5, 0])));
    return Math.min(2000, metres).toFixed(1);
  }

  function addIdentify(map, cfg) {
    var measuring = false;
    map.on("measurestart", function () { measuring = true; });
    map.on("measurefinish", function () { measuring = false; });
    map.on("click", function (e) {
      if (measuring || OB.drawing || !cfg.version) return;
      var url = cfg.identify.replace("{version}", encodeURIComponent(cfg.version)) +
        "?lon=" + e.latlng.lng.toFixed(7) + "&lat=" + e.latlng.lat.toFixed(7) + "&r=" + clickRadius(map, e);
      getJSON(url).then(function (data) {
        var pieces = data.pieces || [];
        var html = pieces.length ? pieces.map(function (p) {
          var sources = (p.sources || []).map(function (s) { return esc(s.layer) + "#" + esc(s.feature_id); });
          return "<div><b>" + kindLabel(p.kind) + "</b><br>" + (p.kinds || []).map(kindLabel).join("<br>") +
            (sources.length ? '<br><span class="ob-en">来源 Sources: ' + sources.join(", ") + "</span>" : "") +
            '<br><span class="ob-en">图斑 Piece ' + esc(p.piece_id) + " · " + num(p.area_m2, 0) + " m²</span></div>";
        }).join("<hr>") : "城市范围外 Outside the city area";
        var conflicts = (data.conflicts || []).map(conflictHtml).join("<hr>");
        if (conflicts) html = conflicts + "<hr>" + html;
        L.popup({ maxWidth: 360, className: "ob-identify" }).setLatLng(e.latlng).setContent(html).openOn(map);
      }).catch(function () { /* a failed look-up leaves the map as it was */ });
    });
  }

  /* ---- the JSON API (authenticated by the blueprint_key cookie) ---- */
  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
      if (r.status === 401 || r.status === 403) throw { auth: true, status: r.status };
      if (!r.ok) throw { status: r.status };
      return r.json();
    });
  }

  /* a call whose error body ({code, detail, message_zh}) reaches the caller; never a stack trace */
  function call(url, options) {
    var opts = Object.assign({ credentials: "same-origin" }, options || {});
    opts.headers = Object.assign({ Accept: "application/json" }, opts.headers || {});
    return fetch(url, opts).then(function (r) {
      return r.text().then(function (text) {
        var body = {};
        try { body = text ? JSON.parse(text) : {}; } catch (e) { body = { detail: "" }; }
        if (!r.ok) throw { status: r.status, code: body.code, detail: body.detail, message_zh: body.message_zh };
        return { status: r.status, body: body };
      });
    }, function () {
      throw { status: 0, code: "network", message_zh: "无法连接服务：请检查网络后重试", detail: "the service did not answer" };
    });
  }

  function asList(data) {
    if (Array.isArray(data)) return data;
    if (!data) return [];
    if (Array.isArray(data.items)) return data.items;
    if (Array.isArray(data.projects)) return data.projects;
    if (Array.isArray(data.features)) return data.features.map(function (f) { return f.properties || {}; });
    return [];
  }

  function latestCheckId(project) {
    if (project.latest_check_id) return project.latest_check_id;
    if (project.latest_check && project.latest_check.check_id) return project.latest_check.check_id;
    var checks = project.checks || [];
    var last = checks[checks.length - 1];
    return last ? (typeof last === "string" ? last : last.check_id) : null;
  }

  function showError(err) {
    var panel = document.getElementById("ob-panel");
    panel.hidden = false;
    panel.innerHTML = err && err.auth
      ? '<p class="ob-warn">未登录或无权限 Not signed in or not allowed. <a href="' + esc(OB.cfg.login) + '">登录 Sign in</a></p>'
      : '<p class="ob-warn">未找到 Not found (' + esc(err && err.status) + ")</p>";
    setState("error");
  }

  function search(q) {
    var list = document.getElementById("ob-results");
    list.innerHTML = "";
    if (!q) return;
    setState("searching");
    getJSON(OB.cfg.api + "/projects?q=" + encodeURIComponent(q)).then(function (data) {
      var items = asList(data);
      var exact = items.filter(function (p) { return p.code === q || p.name === q; });
      if (exact.length === 1 || items.length === 1) return select((exact[0] || items[0]).code);
      list.innerHTML = items.length ? items.map(function (p) {
        return '<li><a href="#" data-code="' + esc(p.code) + '">' + esc(p.code) + " " + esc(p.name) + "</a></li>";
      }).join("") : "<li>无结果 No match</li>";
      setState("results");
    }).catch(showError);
  }

  function drawProject(location) {
    OB.highlight.clearLayers();
    var geom = location.geometry || location.parcels;
    var shape = geom ? L.geoJSON(geom, {
      style: { color: "#1f4fff", weight: 3, fillOpacity: 0, className: "ob-parcel" },
    }).addTo(OB.highlight) : null;
    OB.parcels = shape;
    var bounds = null;
    if (Array.isArray(location.bbox) && location.bbox.length === 4) {
      var b = location.bbox;
      bounds = L.latLngBounds([b[1], b[0]], [b[3], b[2]]);
    } else if (shape) {
      bounds = shape.getBounds();
    }
    // clear of the info panel (left) and the layer list (right)
    var side = Math.min(460, OB.map.getSize().x * 0.35);
    if (OB.tiles) OB.tiles.abortPending(); // what was loading for the old view is not wanted any more
    if (bounds && bounds.isValid()) {
      OB.map.flyToBounds(bounds, { maxZoom: 17, paddingTopLeft: [side, 60], paddingBottomRight: [side, 40],
                                   duration: 0.8 });
    }
    else if (location.centroid) {
      var c = location.centroid.coordinates || location.centroid;
      OB.map.flyTo([c[1], c[0]], 16);
    }
  }

  // zones under lines, as on the map; kinds the catalogue does not know (e.g. "outside the urban
  // boundary") are drawn faint and grey rather than guessed at
  var HIT_ORDER = { zone: 0, other: 1, overlay: 2, line: 3 };

  function drawOverlaps(check) {
    var hits = [];
    (check.parcels || []).forEach(function (parcel) {
      (parcel.conflicts || []).forEach(function (hit) { if (hit.geometry) hits.push(hit); });
    });
    hits.sort(function (a, b) {
      var ga = (OB.kinds[a.kind] || { group: "other" }).group, gb = (OB.kinds[b.kind] || { group: "other" }).group;
      return (HIT_ORDER[ga] || 1) - (HIT_ORDER[gb] || 1);
    });
    hits.forEach(function (hit) {
      var spec = OB.kinds[hit.kind];
      var style = spec ? { color: spec.colour, weight: 2, fillOpacity: 0.6 }
        : { color: "#777777", weight: 1, dashArray: "4 3", fillOpacity: 0.2 };
      style.className = "ob-overlap ob-overlap-" + hit.kind;
      L.geoJSON(hit.geometry, { style: style })
        .bindTooltip(esc(hit.name_zh || hit.kind) + " " + esc(hit.name_en || "") + " " + num(hit.overlap_area_m2, 1) + " m²")
        .addTo(OB.highlight);
    });
    if (OB.parcels) OB.parcels.bringToFront(); // the parcel outline stays readable over its overlaps
  }

  function row(zh, en, value) {
    return "<tr><th>" + esc(zh) + ' <span class="ob-en">' + esc(en) + "</span></th><td>" + esc(value) + "</td></tr>";
  }

  function verdictBadge(verdict) {
    var v = VERDICT[verdict] || [verdict, verdict];
    return '<span class="ob-verdict ob-verdict-' + esc(verdict) + '">' + esc(v[0]) + " " + esc(v[1]) + "</span>";
  }

  /* what the applicant must provide or obtain: [{zh, en, basis}], numbered (conditional rules only) */
  function requirementsHtml(needs) {
    if (!needs.length) return "";
    return '<ol class="ob-requirements">' + needs.map(function (n) {
      return "<li>" + esc(n.zh) + ' <span class="ob-en">' + esc(n.en) + "</span>" +
        (n.basis ? ' <span class="ob-basis">（' + esc(n.basis) + "）</span>" : "") + "</li>";
    }).join("") + "</ol>";
  }

  /* the requirements of a parcel's conditional overlaps, each once */
  function parcelRequirements(parcel) {
    var seen = {}, out = [];
    (parcel.conflicts || []).forEach(function (hit) {
      if (hit.rule !== "conditional") return;
      (hit.requirements || []).forEach(function (n) {
        if (!seen[n.key]) { seen[n.key] = true; out.push(n); }
      });
    });
    return out;
  }

  function rulesVersion(check) {
    var r = check.rules || {};
    return r.version ? r.version + (r.effective_date ? "（生效 " + r.effective_date + "）" : "") : "未记录 not recorded";
  }

  function parcelHtml(parcel) {
    var needs = parcelRequirements(parcel);
    var hits = (parcel.conflicts || []).map(function (hit) {
      var spec = OB.kinds[hit.kind] || { colour: "#999" };
      var rule = RULE[hit.rule] || [hit.rule, hit.rule];
      return "<tr><td>" + '<span class="ob-swatch" style="background:' + esc(spec.colour) + '"></span>' +
        esc(hit.name_zh || hit.kind) + ' <span class="ob-en">' + esc(hit.name_en || "") + "</span></td><td>" +
        esc(rule[0]) + ' <span class="ob-en">' + esc(rule[1]) + "</span></td><td>" + num(hit.overlap_area_m2, 2) +
        "</td><td>" + num(hit.overlap_ellipsoidal_area_m2, 2) + "</td><td>" + num(100 * hit.overlap_ratio, 2) + "%</td></tr>";
    }).join("");
    return '<div class="ob-parcel-block"><h4>地块 Parcel ' + esc(parcel.parcel_id) + " " + verdictBadge(parcel.verdict) +
      "</h4><p>面积 Area: " + num(parcel.area_m2, 2) + " m²（平面 plane） / " + num(parcel.ellipsoidal_area_m2, 2) +
      " m²（椭球 ellipsoidal）</p>" +
      (hits ? '<table class="ob-table"><tr><th>管控图层 Kind</th><th>规则 Rule</th><th>重叠 m²</th><th>椭球 m²</th>' +
        "<th>占比 Ratio</th></tr>" + hits + "</table>" : "<p>无重叠 No overlap</p>") +
      (needs.length ? "<p><b>须提供或取得</b> <span class=\"ob-en\">The applicant must provide or obtain</span></p>" +
        requirementsHtml(needs) : "") +
      '<p class="ob-expl">' + esc(parcel.explanation_zh) + '</p><p class="ob-expl ob-en">' + esc(parcel.explanation_en) + "</p></div>";
  }

  function conditionsText(conditions) {
    return Array.isArray(conditions) ? conditions.join("；") : conditions || "";
  }

  function versionNote(check) {
    if (!check.blueprint_version || check.blueprint_version === OB.cfg.version) return "";
    var url = "?version=" + encodeURIComponent(check.blueprint_version) + "&project=" +
      encodeURIComponent(OB.current || "");
    return '<p class="ob-note">该检查基于蓝图 ' + esc(check.blueprint_version) + "，地图显示 " + esc(OB.cfg.version) +
      ' <span class="ob-en">The check used ' + esc(check.blueprint_version) + ", the map shows " + esc(OB.cfg.version) +
      '</span> <a href="' + esc(url) + '">切换 Switch</a></p>';
  }

  function reviewsHtml(reviews) {
    if (!reviews.length) return "<p>暂无联审意见 No review decision yet</p>";
    return "<ul>" + reviews.map(function (r) {
      return "<li><b>" + esc(zhEn(DECISION, r.decision)) + "</b> — " + esc(r.decided_by || r.by || r.reviewer || "") + " " +
        esc(r.decided_at || r.at || r.created_at || "") + (conditionsText(r.conditions) ? "<br>条件 Conditions: " +
        esc(conditionsText(r.conditions)) : "") +
        (r.reasons ? "<br>理由 Reasons: " + esc(r.reasons) : "") + "</li>";
    }).join("") + "</ul>";
  }

  function renderPanel(project, check) {
    var panel = document.getElementById("ob-panel");
    var reviews = project.reviews || (check && check.reviews) || [];
    var html = '<button type="button" class="ob-close" aria-label="关闭 Close">×</button>' +
      "<h3>" + esc(project.code) + " " + esc(project.name) + "</h3>" +
      '<h4>项目信息 Project</h4><table class="ob-table">' +
      row("项目代码", "Code", project.code) + row("项目名称", "Name", project.name) +
      row("项目类型", "Type", typeName(project.project_type || project.type)) + row("建设单位", "Applicant", project.applicant) +
      row("所在区县", "District", project.district) + row("状态", "Status", zhEn(STATUS, project.status)) + "</table>" +
      warningHtml(project) + opinionsHtml(project);
    if (check) {
      var report = OB.cfg.report.replace("{check_id}", encodeURIComponent(check.check_id));
      html += "<h4>审查结论 Verdict " + verdictBadge(check.verdict) + "</h4>" +
        '<table class="ob-table">' + row("蓝图版本", "Blueprint version", check.blueprint_version) +
        row("检查编号", "Check id", check.check_id) + row("规则版本", "Rules version", rulesVersion(check)) +
        "</table>" + versionNote(check) +
        '<p class="ob-reports"><a href="' + esc(report) + '" target="_blank">审查报告（网页） Report</a> · ' +
        reportLink(check.check_id, "docx", "下载审查报告（Word）") + " · " + reportLink(check.check_id, "xlsx", "下载审查报告（Excel）") +
        " · " + reportLink(check.check_id, "pdf", "下载审查报告（PDF）") + "</p>" +
        (check.parcels || []).map(parcelHtml).join("") + window.OneBlueprintPlanning.html(check) +
        checklistLinks(project.code);
    } else {
      html += "<p>尚未审查 Not screened yet</p>";
    }
    html += historyHtml(project);
    html += "<h4>联审意见 Review decisions</h4>" + reviewsHtml(reviews);
    if (check && OB.me && MAY_DECIDE[OB.me.role]) html += decideForm();
    panel.innerHTML = html;
    panel.setAttribute("data-code", project.code);
    panel.hidden = false;
    panel.querySelector(".ob-close").onclick = function () { panel.hidden = true; OB.highlight.clearLayers(); };
    var ack = panel.querySelector("#ob-ack");
    if (ack) ack.onclick = function () { acknowledge(project); };
    var form = panel.querySelector("#ob-decide");
    if (form) form.addEventListener("submit", function (e) { e.preventDefault(); decide(project, check); });
  }

  /* 预警: a re-screening after a publish changed the verdict; stays until a planner acknowledges it */
  function warningHtml(project) {
    var w = project.warning;
    if (!w) return "";
    var rule = function (r) { return r ? RULE[r][0] : "无"; };
    var kinds = (w.kinds_changed || []).map(function (k) {
      return esc(k.name_zh) + "：" + esc(rule(k.before)) + " → " + esc(rule(k.after));
    }).join("；");
    return '<div class="ob-warning" role="alert"><b>预警 Warning</b> 蓝图 ' + esc(w.blueprint_version) +
      " 发布后重新检测 re-screened：" + verdictBadge(w.before) + " → " + verdictBadge(w.after) +
      (kinds ? "<br>" + kinds : "") +
      (OB.me && MAY_ACK[OB.me.role] ? ' <button type="button" id="ob-ack">确认预警 Acknowledge</button>' : "") + "</div>";
  }

  /* 确认预警: the meeting map and the workbench acknowledge through this one call */
  function acknowledgeWarning(code) {
    return call(OB.cfg.api + "/projects/" + encodeURIComponent(code) + "/warning/ack", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
    });
  }

  function acknowledge(project) {
    acknowledgeWarning(project.code).catch(function (err) {
      if (err.status === 0) throw err; // refused (already acknowledged elsewhere): show the project as it now is
    }).then(function () { return select(project.code); }).catch(showError);
  }

  /* 前期意见: the latest opinion round, one line per department (answer, or pending / overdue) */
  function opinionsHtml(project) {
    var rounds = project.opinion_rounds || [];
    if (!rounds.length) return "";
    var r = rounds[rounds.length - 1];
    return "<h4>前期意见 Opinions</h4><p>第 " + esc(r.seq) + " 轮 · " + esc(r.status_zh) +
      (r.outcome_zh ? " · " + esc(r.outcome_zh) : "") + " · 答复期限 " + esc(r.due_on) + '</p><ul class="ob-opinions">' +
      r.departments.map(function (d) {
        var o = d.opinion;
        var text = o ? "<b>" + esc(o.answer_zh) + "</b>" +
          (o.conditions.length ? "（条件：" + esc(o.conditions.join("；")) + "）" : "") + (o.reasons ? " " + esc(o.reasons) : "")
          : '<span class="' + (d.state === "overdue" ? "ob-warn" : "") + '">' + esc(d.state_zh) + "</span>";
        return "<li>" + esc(d.name_zh) + "：" + text + "</li>";
      }).join("") + "</ul>";
  }

  function typeName(key) {
    var t = OB.types && OB.types[key];
    return t ? t.name_zh + " " + t.name_en : key;
  }

  function reportLink(checkId, format, text) {
    var url = OB.cfg.reports.replace("{check_id}", encodeURIComponent(checkId)).replace("{format}", format);
    return '<a href="' + esc(url) + '" download>' + esc(text) + "</a>";
  }

  /* 用地清单 of the project: what the blueprint says about its land, for the developer */
  function checklistLinks(code) {
    function link(format, text) {
      return '<a href="' + esc(OB.cfg.checklist.replace("{code}", encodeURIComponent(code)).replace("{format}", format)) +
        '" download>' + esc(text) + "</a>";
    }
    return '<p class="ob-reports" id="ob-checklist">用地清单 <span class="ob-en">Land checklist</span>：' +
      link("docx", "下载用地清单（Word）") + " · " + link("pdf", "下载用地清单（PDF）") + "</p>";
  }

  /* every check of the project, with the parcel set it screened (earlier sets are kept) */
  function historyHtml(project) {
    var checks = project.checks || [];
    if (checks.length < 2 && !(project.parcel_revisions || []).length) return "";
    return "<h4>检测历史 History</h4><ul class=\"ob-history\">" + checks.map(function (c) {
      return "<li>" + esc(String(c.created_at || "").slice(0, 16).replace("T", " ")) + " " + verdictBadge(c.verdict) +
        " 蓝图 " + esc(c.blueprint_version) + " · 第 " + esc(c.parcels_revision || 1) + " 套地块 parcel set · " +
        reportLink(c.check_id, "docx", "Word") + "</li>";
    }).join("") + "</ul>";
  }

  function decideForm() {
    var options = Object.keys(DECISION).filter(function (k) { return k !== "deferred"; }).map(function (k) {
      return '<option value="' + k + '">' + esc(DECISION[k][0]) + " " + esc(DECISION[k][1]) + "</option>";
    }).join("");
    return '<form id="ob-decide" class="ob-decide"><h4>记录联审决定 Record the decision</h4>' +
      '<label for="ob-decision">联审决定 Decision</label><select id="ob-decision">' + options + "</select>" +
      '<label for="ob-decided-by">审查会议 Decided by</label><input id="ob-decided-by" value="联合审查会议 Joint review meeting"/>' +
      '<label for="ob-conditions">附加条件 Conditions（每行一条 one per line）</label><textarea id="ob-conditions" rows="2"></textarea>' +
      '<label for="ob-reasons">理由 Reasons</label><textarea id="ob-reasons" rows="2"></textarea>' +
      '<p><button type="submit">记录决定 Record</button></p><div id="ob-decide-msg" role="status"></div></form>';
  }

  function decide(project, check) {
    var conditions = document.getElementById("ob-conditions").value.split(/\n/).map(function (s) { return s.trim(); })
      .filter(Boolean);
    var body = { check_id: check.check_id, decision: document.getElementById("ob-decision").value,
      decided_by: document.getElementById("ob-decided-by").value.trim(), conditions: conditions,
      reasons: document.getElementById("ob-reasons").value.trim() };
    call(OB.cfg.api + "/projects/" + encodeURIComponent(project.code) + "/reviews", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    }).then(function () {
      setState("decided");
      return select(project.code);
    }).catch(function (err) {
      var msg = document.getElementById("ob-decide-msg");
      if (msg) msg.innerHTML = '<p class="ob-warn">' + esc((err && err.message_zh) || "未能记录 Not recorded") + " " +
        esc((err && err.detail) || "") + "</p>";
    });
  }

  /* fly to a project and show its panel; a newer selection wins, so no stale panel is ever drawn:
   * the map and the panel switch together, once the project, its location and its check are all here */
  function select(code) {
    OB.current = code;
    var ticket = (OB.ticket = (OB.ticket || 0) + 1);
    function stale() { return ticket !== OB.ticket; }
    document.getElementById("ob-results").innerHTML = "";
    setState("loading");
    var base = OB.cfg.api + "/projects/" + encodeURIComponent(code);
    return Promise.all([getJSON(base), getJSON(base + "/location").catch(function () { return {}; })])
      .then(function (both) {
        if (stale()) return null;
        var project = both[0];
        var checkId = latestCheckId(project);
        var check = checkId ? getJSON(OB.cfg.api + "/checks/" + encodeURIComponent(checkId)).catch(function () { return null; })
          : Promise.resolve(null);
        return check.then(function (result) {
          if (stale()) return;
          drawProject(both[1]);
          if (result) drawOverlaps(result);
          renderPanel(project, result);
          setState("located");
        });
      })
      .catch(function (err) { if (!stale()) showError(err); });
  }

  function wireSearch() {
    var form = document.getElementById("ob-search-form");
    if (!form) return; // the workbench has no search bar
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      search(document.getElementById("ob-search").value.trim());
    });
    document.getElementById("ob-results").addEventListener("click", function (e) {
      var code = e.target && e.target.getAttribute("data-code");
      if (code) { e.preventDefault(); select(code); }
    });
    var versions = document.getElementById("ob-version");
    OB.cfg.versions.forEach(function (v) {
      var opt = document.createElement("option");
      opt.value = v.version;
      opt.textContent = v.version + (v.status === "published" ? "（已发布 published）" : "（草稿 draft）");
      opt.selected = v.version === OB.cfg.version;
      versions.appendChild(opt);
    });
    versions.addEventListener("change", function () {
      window.location.search = "?version=" + encodeURIComponent(versions.value);
    });
  }

  function loadWhoAndTypes() {
    // labels for the panel (Chinese type names) and whether this person may record decisions
    return Promise.all([
      getJSON(OB.cfg.api + "/me").then(function (me) { OB.me = me; }).catch(function () {}),
      getJSON(OB.cfg.api + "/project-types").then(function (types) {
        OB.types = {};
        types.forEach(function (t) { OB.types[t.key] = t; });
      }).catch(function () {}),
    ]);
  }

  OB.init = function (map, cfg) {
    OB.map = map;
    OB.cfg = cfg;
    OB.kinds = {};
    cfg.layers.forEach(function (s) { OB.kinds[s.key] = s; });
    OB.select = select;
    window.OneBlueprintPlanning.setLandUses(cfg.landUses);
    OB.search = search;
    OB.util = { esc: esc, num: num, VERDICT: VERDICT, RULE: RULE, STATUS: STATUS, DECISION: DECISION, REPAIR: REPAIR,
                zhEn: zhEn,
                kindLabel: kindLabel, verdictBadge: verdictBadge, getJSON: getJSON, call: call,
                requirementsHtml: requirementsHtml, parcelRequirements: parcelRequirements, rulesVersion: rulesVersion,
                warningHtml: warningHtml, acknowledgeWarning: acknowledgeWarning };
    var workbench = cfg.mode === "workbench";
    // the whole city, clear of the top bar (or the workbench panel) and of the open layer list on the right
    var right = Math.min(460, map.getSize().x * 0.35);
    map.fitBounds([[cfg.bounds[1], cfg.bounds[0]], [cfg.bounds[3], cfg.bounds[2]]],
      { paddingTopLeft: workbench ? [450, 20] : [50, 60], paddingBottomRight: [right, 20], animate: false });
    L.control.scale({ imperial: false, maxWidth: 160 }).addTo(map); // metres only: plans are metric
    addBasemap(map, cfg);
    if (cfg.version) {
      var byKey = addLayers(map, cfg);
      addLegend(map, cfg, byKey);
      OB.labelsReady = addBoundaryLabels(map, cfg);
    } else if (!workbench) {
      document.getElementById("ob-panel").hidden = false;
      document.getElementById("ob-panel").innerHTML = "<p>尚无蓝图版本 No blueprint version yet</p>";
    }
    OB.highlight = L.featureGroup().addTo(map);
    addCoordinates(map, cfg);
    addIdentify(map, cfg);
    wireSearch();
    if (workbench) {
      window.OneBlueprintWorkbench.init(map, cfg);
      return;
    }
    var labels = loadWhoAndTypes();
    setState("ready");
    if (cfg.project) labels.then(function () { select(cfg.project); });
  };
})();
