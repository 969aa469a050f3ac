/* One Blueprint 一张蓝图 planner's workbench: upload, draw or type parcels, screen them through the same
 * /api/v1 endpoints as any client, read the verdict, download the 审查报告, save into the project pool. */
(function () {
  "use strict";

  var WB = (window.OneBlueprintWorkbench = { input: null, state: "init", check: null });
  var OB, U, cfg;
  var NATIONAL_CODE = /^\d{4}-\d{6}-\d{2}-\d{2}-\d{6}$/;
  var MAY_SCREEN = { planner: true, admin: true };
  var JOB_WORDS = { queued: "排队中 queued", running: "检测中 running", succeeded: "完成 done", failed: "失败 failed" };

  function $(id) { return document.getElementById(id); }

  function setState(state) {
    WB.state = state;
    document.body.setAttribute("data-wb-state", state);
  }

  /* calls go through viewer.js's OB.util.call: errors arrive as {status, code, detail, message_zh} */
  function call(url, options) { return U.call(url, options); }

  function errorHtml(err) {
    var zh = err.message_zh || (err.status === 401 || err.status === 403 ? "未登录或无权限：请重新登录" : "操作未完成：请按提示检查后重试");
    return "<b>" + U.esc(zh) + "</b>" + (err.detail ? '<br><span class="ob-en">' + U.esc(err.detail) + "</span>" : "") +
      (err.code ? ' <span class="ob-en">(' + U.esc(err.code) + ")</span>" : "");
  }

  function showInputError(err) {
    $("wb-input-error").innerHTML = errorHtml(err);
    setState("input-error");
  }

  function clearInputError() { $("wb-input-error").innerHTML = ""; }

  /* ---- the three ways of giving parcels; the last one used is the submission ---- */
  function setActive(input, text) {
    WB.input = input;
    $("wb-active").innerHTML = text;
    clearInputError();
    setState("input");
  }

  function wireFile() {
    $("wb-file").addEventListener("change", function () {
      var file = this.files && this.files[0];
      if (!file) return;
      if (file.size === 0) {
        showInputError({ code: "empty_file", message_zh: "文件是空的：请选择含有地块的文件", detail: file.name + ": 0 bytes" });
        WB.input = null;
        return;
      }
      if (cfg.maxUploadBytes && file.size > cfg.maxUploadBytes) {
        showInputError({ code: "file_too_large", message_zh: "文件过大（" + (file.size / 1048576).toFixed(0) +
          " MB，上限 " + (cfg.maxUploadBytes / 1048576).toFixed(0) + " MB）：请拆分后分批检测，文件未上传",
          detail: file.name + " is larger than the upload limit; nothing was sent" });
        WB.input = null;
        return;
      }
      setActive({ kind: "file", file: file }, "使用文件 Using file：" + U.esc(file.name));
    });
  }

  /* a small click-to-add polygon tool on Leaflet's own events (see static/LICENSES/README.md for why) */
  function drawTool(map, style, onDone) {
    var points = [], sketch = L.layerGroup().addTo(map), line = null;
    function reset() {
      points = [];
      line = null;
      sketch.clearLayers();
      OB.drawing = false;
      map.doubleClickZoom.enable();
      map.getContainer().style.cursor = "";
      $("wb-draw-hint").hidden = true;
      $("wb-draw").setAttribute("aria-pressed", "false");
    }
    function finish() {
      var ring = points.slice();
      reset();
      if (ring.length >= 3) onDone(L.polygon(ring, style));
    }
    map.on("click", function (e) {
      if (!OB.drawing) return;
      var closing = points.length >= 3 && map.latLngToContainerPoint(points[0]).distanceTo(e.containerPoint) < 12;
      if (closing) { finish(); return; }
      points.push(e.latlng);
      L.circleMarker(e.latlng, { radius: 4, color: style.color, className: "wb-vertex" }).addTo(sketch);
      if (line) line.setLatLngs(points); else line = L.polyline(points, { color: style.color, dashArray: "4 4" }).addTo(sketch);
    });
    map.on("dblclick", function () { if (OB.drawing) finish(); });
    document.addEventListener("keydown", function (e) { if (e.key === "Escape" && OB.drawing) reset(); });
    return {
      start: function () {
        reset();
        OB.drawing = true;
        map.doubleClickZoom.disable();
        map.getContainer().style.cursor = "crosshair";
        $("wb-draw-hint").hidden = false;
        $("wb-draw").setAttribute("aria-pressed", "true");
      },
    };
  }

  function wireDraw(map) {
    var drawn = L.featureGroup().addTo(map);
    WB.drawnLayer = drawn;
    var tool = drawTool(map, { color: "#1f4fff", weight: 3, fillOpacity: 0.08 }, function (polygon) {
      drawn.addLayer(polygon);
      var count = drawn.getLayers().length;
      setActive({ kind: "drawn" }, "使用绘制的 " + count + " 个地块 Using " + count + " drawn parcel(s)");
      setState("drawn");
    });
    $("wb-draw").addEventListener("click", function () {
      tool.start();
      setState("drawing");
    });
    $("wb-clear").addEventListener("click", function () {
      drawn.clearLayers();
      OB.highlight.clearLayers();
      $("wb-file").value = "";
      $("wb-coords").value = "";
      WB.input = null;
      $("wb-active").innerHTML = "尚未提供地块 <span class=\"ob-en\">No parcels yet</span>";
      clearInputError();
    });
  }

  function drawnCollection() {
    var features = WB.drawnLayer.getLayers().map(function (layer, i) {
      var f = layer.toGeoJSON();
      f.properties = { parcel_id: String(i + 1), name: "绘制地块 " + (i + 1) };
      return f;
    });
    return { type: "FeatureCollection", features: features };
  }

  /* the CRS a file does not state (a Shapefile without .prj, web-map coordinates): sent as the form's crs */
  function wireCrs() {
    var select = $("wb-crs");
    var options = [["", "按文件声明 as the file states"], ["GCJ02", "GCJ-02 高德/腾讯地图坐标"], ["BD09", "BD-09 百度地图坐标"],
      ["EPSG:4490", "CGCS2000 经纬度 EPSG:4490"]];
    for (var z = 25; z <= 45; z++) {
      options.push(["EPSG:" + (4534 + z - 25), "CGCS2000 高斯投影 " + z + " 带（" + 3 * z + "°E，无带号前缀） EPSG:" + (4534 + z - 25)]);
      options.push(["EPSG:" + (4513 + z - 25), "CGCS2000 高斯投影 " + z + " 带（Y 带带号前缀） EPSG:" + (4513 + z - 25)]);
    }
    options.forEach(function (o) {
      var opt = document.createElement("option");
      opt.value = o[0];
      opt.textContent = o[1];
      select.appendChild(opt);
    });
  }

  function wireCoords() {
    var zone = $("wb-zone");
    var blank = document.createElement("option");
    blank.value = "";
    blank.textContent = "请选择带号（坐标带前缀时可不选） Choose a zone";
    zone.appendChild(blank);
    for (var z = 25; z <= 45; z++) {
      var opt = document.createElement("option");
      opt.value = String(z);
      opt.textContent = z + " 带（中央经线 " + 3 * z + "°E） zone " + z;
      zone.appendChild(opt);
    }
    function changed() {
      if ($("wb-coords").value.trim()) setActive({ kind: "coords" }, "使用输入的坐标 Using the typed coordinates");
    }
    $("wb-coords").addEventListener("input", changed);
    zone.addEventListener("change", changed);
  }

  /* "X,Y" lines (or J1,1,X,Y) become a 部标 TXT, read by the service's own 部标 reader */
  function coordsAsBubiao(text, zone) {
    if (text.indexOf("[地块坐标]") >= 0) return text;
    var points = [];
    text.split(/\r?\n/).forEach(function (line) {
      var nums = line.trim().split(/[\s,，;；]+/).filter(Boolean);
      if (nums.length >= 4 && /^J/i.test(nums[0])) nums = nums.slice(2);
      if (nums.length >= 2 && isFinite(Number(nums[0])) && isFinite(Number(nums[1]))) {
        points.push([Number(nums[0]), Number(nums[1])]);
      }
    });
    if (points.length < 3) return null;
    var first = points[0], last = points[points.length - 1];
    if (first[0] !== last[0] || first[1] !== last[1]) points.push(first);
    var area = 0;
    for (var i = 0; i + 1 < points.length; i++) area += points[i][1] * points[i + 1][0] - points[i + 1][1] * points[i][0];
    var lines = ["[属性描述]", "格式版本号=1.01版本", "坐标系=2000国家大地坐标系", "几度分带=3", "投影类型=高斯克吕格",
      "计量单位=米", "带号=" + (zone || ""), "精度=0.0001", "[地块坐标]",
      points.length + "," + (Math.abs(area) / 2 / 10000).toFixed(4) + ",1,输入坐标地块,面,,,,@"];
    points.forEach(function (p, k) {
      var n = k === points.length - 1 ? 1 : k + 1;
      lines.push("J" + n + ",1," + p[0].toFixed(4) + "," + p[1].toFixed(4));
    });
    return lines.join("\n") + "\n";
  }

  /* the same submission, for a check or for the project pool: {json} or {form} */
  function submission() {
    var input = WB.input;
    if (!input) return { error: { code: "no_parcels", message_zh: "请先上传地块文件、绘制地块或输入坐标",
      detail: "give a parcel file, draw a parcel or type coordinates" } };
    if (input.kind === "drawn") {
      var fc = drawnCollection();
      if (!fc.features.length) return { error: { code: "no_parcels", message_zh: "尚未绘制地块：请先绘制" } };
      return { json: fc };
    }
    var form = new FormData();
    if (input.kind === "file") {
      form.append("file", input.file, input.file.name);
      if ($("wb-crs").value) form.append("crs", $("wb-crs").value);
      return { form: form };
    }
    var text = coordsAsBubiao($("wb-coords").value, $("wb-zone").value);
    if (!text) return { error: { code: "coordinates", message_zh: "坐标不足：至少需要 3 个界址点，每行一个 X,Y",
      detail: "at least three points, one X,Y per line" } };
    form.append("file", new Blob([text], { type: "text/plain" }), "coordinates.txt");
    return { form: form };
  }

  function withFields(sub, fields) {
    if (sub.json) {
      var body = Object.assign({}, fields);
      body.parcels = sub.json;
      return { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } };
    }
    var form = new FormData();
    sub.form.forEach(function (v, k) { form.append(k, v); });
    Object.keys(fields).forEach(function (k) {
      if (fields[k]) form.append(k, typeof fields[k] === "object" ? JSON.stringify(fields[k]) : fields[k]);
    });
    return { method: "POST", body: form };
  }

  /* ---- 申报指标: the project's own plan, sent as `declared` (the service checks every value and names a bad one) ---- */
  var DECLARED_INPUTS = [["land_use", "wb-land-use"], ["far", "wb-far"], ["building_density", "wb-building-density"],
    ["green_ratio", "wb-green-ratio"], ["height_m", "wb-height"]];

  function declaredValues() {
    var out = {}, any = false;
    DECLARED_INPUTS.forEach(function (d) {
      var v = $(d[1]).value.trim();
      if (v) { out[d[0]] = v; any = true; }
    });
    return any ? out : null;
  }

  /* 用地性质: the national codes, first-level classes as group headings, finer codes indented */
  function fillLandUses(list) {
    var select = $("wb-land-use");
    var blank = document.createElement("option");
    blank.value = "";
    blank.textContent = "未申报 not declared";
    select.appendChild(blank);
    (list || []).forEach(function (u) {
      var opt = document.createElement("option");
      opt.value = u[0];
      opt.textContent = (u[0].length > 2 ? "　".repeat(u[0].length / 2 - 1) : "") + u[1] + "（" + u[0] + "）";
      select.appendChild(opt);
    });
  }

  /* ---- screening ---- */
  function progress(on, text) {
    $("wb-progress-box").hidden = !on;
    $("wb-progress-text").textContent = text || "";
    $("wb-run").disabled = on;
  }

  function waitForJob(job) {
    return new Promise(function (resolve, reject) {
      function poll() {
        call(cfg.api + "/jobs/" + encodeURIComponent(job.job_id)).then(function (r) {
          var j = r.body;
          progress(true, "后台检测 " + (JOB_WORDS[j.status] || j.status) + "（" + (j.parcel_count || "") + " 个地块 parcels）");
          if (typeof j.progress === "number") $("wb-progress").value = j.progress;
          if (j.status === "succeeded") resolve(call(cfg.api + "/checks/" + encodeURIComponent(j.result_id)).then(function (c) { return c.body; }));
          else if (j.status === "failed") reject({ code: j.error_code, detail: j.error_detail, message_zh: "后台检测失败：" + (j.error_detail || "") });
          else setTimeout(poll, 700);
        }, reject);
      }
      poll();
    });
  }

  function screen(e) {
    e.preventDefault();
    var sub = submission();
    if (sub.error) { showInputError(sub.error); return; }
    clearInputError();
    setState("screening");
    progress(true, "检测中… Screening…");
    var fields = { project_type: $("wb-type").value, blueprint_version: $("wb-version").value,
      declared: declaredValues() };
    call(cfg.api + "/checks", withFields(sub, fields)).then(function (r) {
      return r.status === 202 ? waitForJob(r.body) : r.body;
    }).then(function (check) {
      progress(false);
      showResult(check, null);
    }, function (err) {
      progress(false);
      showInputError(err);
    });
  }

  /* ---- the result: verdict, table, explanations, repairs, downloads, map ---- */
  function reportLinks(checkId) {
    function link(format, text) {
      var url = cfg.reports.replace("{check_id}", encodeURIComponent(checkId)).replace("{format}", format);
      return '<a href="' + U.esc(url) + '" download>' + text + "</a>";
    }
    return '<p class="wb-downloads">' + link("docx", "下载审查报告（Word）") + link("xlsx", "下载审查报告（Excel）") +
      link("pdf", "下载审查报告（PDF）") + "</p>";
  }

  /* the project's 用地清单 (a saved project only: the checklist is of a pooled project) */
  function checklistLinks(code) {
    function link(format, text) {
      var url = cfg.checklist.replace("{code}", encodeURIComponent(code)).replace("{format}", format);
      return '<a href="' + U.esc(url) + '" download>' + text + "</a>";
    }
    return '<p class="wb-downloads" id="wb-checklist">' + link("docx", "下载用地清单（Word）") + link("pdf", "下载用地清单（PDF）") + "</p>";
  }

  function resultTable(check) {
    var rows = [];
    WB.hits = [];
    (check.parcels || []).forEach(function (parcel) {
      var hits = parcel.conflicts || [];
      if (!hits.length) {
        rows.push("<tr><td>" + U.esc(parcel.parcel_id) + "</td><td>未触及管控图层 <span class=\"ob-en\">none</span></td>" +
          '<td class="num">–</td><td class="num">–</td><td class="num">–</td><td>–</td><td></td></tr>');
      }
      hits.forEach(function (hit) {
        var index = WB.hits.length;
        WB.hits.push(hit);
        var rule = U.RULE[hit.rule] || [hit.rule, hit.rule];
        rows.push('<tr class="wb-hit" tabindex="0" data-hit="' + index + '" title="单击定位 Click to zoom"><td>' + U.esc(parcel.parcel_id) +
          "</td><td>" + (OB.kinds[hit.kind] ? U.kindLabel(hit.kind) : U.esc(hit.name_zh || hit.kind) +
          ' <span class="ob-en">' + U.esc(hit.name_en || "") + "</span>") + '</td><td class="num">' + U.num(hit.overlap_area_m2, 2) +
          '</td><td class="num">' + U.num(hit.overlap_ellipsoidal_area_m2, 2) + '</td><td class="num">' +
          U.num(100 * hit.overlap_ratio, 2) + "%</td><td>" + U.esc(rule[0]) + (hit.below_tolerance ? "（低于容差）" : "") +
          '</td><td class="wb-reg">' + U.esc((hit.regulation || {}).zh || "") +
          ((hit.regulation || {}).reference_zh ? "<br><b>" + U.esc(hit.regulation.reference_zh) + "</b>" : "") +
          (hit.rule === "conditional" && (hit.requirements || []).length ? '<br><span class="wb-needs">须提供或取得：' +
            U.esc(hit.requirements.map(function (n) { return n.zh; }).join("；")) + "</span>" : "") + "</td></tr>");
      });
    });
    return '<table class="wb-table" id="wb-table"><colgroup><col style="width:11%"><col style="width:19%"><col style="width:14%">' +
      '<col style="width:14%"><col style="width:10%"><col style="width:11%"><col style="width:21%"></colgroup>' +
      "<thead><tr><th>地块 Parcel</th><th>管控图层 Layer</th><th>重叠面积（平面）m²</th><th>重叠面积（椭球）m²</th>" +
      "<th>占比 %</th><th>规则 Rule</th><th>法规依据 Regulation</th></tr></thead><tbody>" + rows.join("") + "</tbody></table>";
  }

  function repairsHtml(check) {
    var all = [];
    (check.parcels || []).forEach(function (p) {
      (p.repairs || []).forEach(function (r) { all.push([p.parcel_id, r]); });
    });
    (check.repairs || []).forEach(function (r) { all.push([r.feature_id, r]); });
    if (!all.length) return "<p>输入无需修复 <span class=\"ob-en\">No repair was needed</span></p>";
    return "<ul id=\"wb-repairs\">" + all.map(function (pr) {
      var r = pr[1];
      return "<li>地块 " + U.esc(pr[0]) + "：" + U.esc(U.zhEn(U.REPAIR, r.problem)) + " → " +
        U.esc(U.zhEn(U.REPAIR, r.action)) +
        (r.detail ? ' <span class="ob-en">' + U.esc(r.detail) + "</span>" : "") + "</li>";
    }).join("") + "</ul>";
  }

  function drawResult(check) {
    OB.highlight.clearLayers();
    var parcels = { type: "FeatureCollection", features: (check.parcels || []).filter(function (p) { return p.geometry; })
      .map(function (p) { return { type: "Feature", properties: { parcel_id: p.parcel_id }, geometry: p.geometry }; }) };
    var outline = L.geoJSON(parcels, { style: { color: "#1f4fff", weight: 3, fillOpacity: 0, className: "ob-parcel" } });
    WB.overlapLayers = WB.hits.map(function (hit) {
      var spec = OB.kinds[hit.kind];
      var style = spec ? { color: spec.colour, weight: 2, fillOpacity: 0.6 } : { color: "#777", weight: 1, dashArray: "4 3", fillOpacity: 0.2 };
      style.className = "ob-overlap ob-overlap-" + hit.kind;
      return hit.geometry ? L.geoJSON(hit.geometry, { style: style })
        .bindTooltip(U.esc(hit.name_zh || hit.kind) + " " + U.num(hit.overlap_area_m2, 2) + " m²").addTo(OB.highlight) : null;
    });
    outline.addTo(OB.highlight);
    // drawn parcels stay (they are still the submission 保存并检测 sends); an earlier drawing goes
    if (!WB.input || WB.input.kind !== "drawn") WB.drawnLayer.clearLayers();
    var bounds = outline.getBounds();
    if (bounds.isValid()) OB.map.fitBounds(bounds, { paddingTopLeft: [450, 40], paddingBottomRight: [40, 40], maxZoom: 17 });
  }

  function zoomToHit(index) {
    var layer = WB.overlapLayers && WB.overlapLayers[index];
    if (!layer) return;
    OB.map.fitBounds(layer.getBounds(), { paddingTopLeft: [450, 40], paddingBottomRight: [40, 40], maxZoom: 19 });
    layer.setStyle({ weight: 4 });
    setTimeout(function () { layer.setStyle({ weight: 2 }); }, 1500);
    document.body.setAttribute("data-wb-zoomed", String(index));
  }

  /* what the applicant must provide or obtain for the conditional overlaps, with the parcels asking */
  function requirementsSection(check) {
    var needs = check.requirements || [];
    if (!needs.length) return "";
    return '<h3>申请人须提供或取得 <span class="ob-en">What the applicant must provide or obtain</span></h3>' +
      '<div id="wb-requirements">' + U.requirementsHtml(needs.map(function (n) {
        return { zh: n.zh + "（地块 " + (n.parcel_ids || []).join("、") + "）", en: n.en, basis: n.basis };
      })) + "</div>";
  }

  function showResult(check, project) {
    WB.check = check;
    var v = U.VERDICT[check.verdict] || [check.verdict, check.verdict];
    var typeName = (WB.types[check.project_type] || {}).name_zh || check.project_type;
    var html = '<p><span id="wb-verdict" class="ob-verdict wb-verdict ob-verdict-' + U.esc(check.verdict) + '">' +
      U.esc(v[0]) + '</span> <span class="ob-en">' + U.esc(v[1]) + "</span></p>" +
      '<table class="ob-table"><tr><th>项目类型</th><td>' + U.esc(typeName) + "</td></tr><tr><th>蓝图版本</th><td>" +
      U.esc(check.blueprint_version) + "</td></tr><tr><th>检查编号</th><td id=\"wb-check-id\">" + U.esc(check.check_id) + "</td></tr>" +
      "<tr><th>规则版本</th><td id=\"wb-rules-version\">" + U.esc(U.rulesVersion(check)) + "</td></tr>" +
      (project ? "<tr><th>项目</th><td>" + U.esc(project.code) + " " + U.esc(project.name) + "</td></tr>" : "") + "</table>" +
      '<p class="ob-expl">' + U.esc(check.explanation_zh) + '</p><p class="ob-expl ob-en">' + U.esc(check.explanation_en) + "</p>" +
      requirementsSection(check) + window.OneBlueprintPlanning.html(check) +
      "<h3>重叠分析 <span class=\"ob-en\">Overlaps (click a row to zoom)</span></h3>" + resultTable(check) +
      "<h3>地块说明 <span class=\"ob-en\">Per parcel</span></h3>" + (check.parcels || []).map(function (p) {
        return "<p>地块 " + U.esc(p.parcel_id) + " " + U.verdictBadge(p.verdict) + " 面积 " + U.num(p.area_m2, 2) +
          " m²（椭球 " + U.num(p.ellipsoidal_area_m2, 2) + " m²）：" + U.esc(p.explanation_zh) + "</p>";
      }).join("") +
      "<h3>几何修复 <span class=\"ob-en\">Repairs to the input</span></h3>" + repairsHtml(check) +
      "<h3>审查报告 <span class=\"ob-en\">Reports</span></h3>" + reportLinks(check.check_id) +
      (project ? checklistLinks(project.code) : "");
    $("wb-result-body").innerHTML = html;
    $("wb-result").hidden = false;
    $("wb-save").hidden = !WB.canScreen;
    Array.prototype.forEach.call(document.querySelectorAll("#wb-table tr.wb-hit"), function (tr) {
      function go() { zoomToHit(Number(tr.getAttribute("data-hit"))); }
      tr.addEventListener("click", go);
      tr.addEventListener("keydown", function (e) { if (e.key === "Enter") go(); });
    });
    drawResult(check);
    setState(project ? "saved" : "result");
  }

  /* ---- save into the project pool: create (or give new parcels to) the project, then screen it ---- */
  function saveMessage(html, ok) {
    $("wb-save-msg").className = ok ? "wb-ok" : "wb-error";
    $("wb-save-msg").innerHTML = html;
  }

  /* the code names a project already in the pool: say so, with its 预警 (a re-screening after a publish
   * changed its verdict) until a planner acknowledges it here or in the meeting map */
  function showPoolState() {
    var code = $("wb-code").value.trim();
    var box = $("wb-pool");
    if (!NATIONAL_CODE.test(code)) { box.innerHTML = ""; return Promise.resolve(null); }
    return call(cfg.api + "/projects/" + encodeURIComponent(code)).then(function (r) {
      var p = r.body;
      box.innerHTML = "已在项目库 In the pool：" + U.esc(p.name) + " · " + U.esc((U.STATUS[p.status] || [p.status])[0]) +
        U.warningHtml(p);
      var ack = box.querySelector("#ob-ack");
      if (ack) ack.onclick = function () { acknowledgeWarning(code); };
      return p;
    }, function (err) {
      box.innerHTML = err.status === 404 ? "新项目 New project" : errorHtml(err);
      return null;
    });
  }

  function acknowledgeWarning(code) {
    U.acknowledgeWarning(code).then(showPoolState, function (err) { $("wb-pool").innerHTML = errorHtml(err); });
  }

  function save(e) {
    e.preventDefault();
    var code = $("wb-code").value.trim();
    if (!NATIONAL_CODE.test(code)) {
      saveMessage(errorHtml({ message_zh: "项目代码须为全国投资项目代码格式 YYYY-DDDDDD-DD-DD-DDDDDD（例如 2026-340700-47-01-000001）",
        detail: "the national investment-project code shape" }), false);
      setState("save-error");
      return;
    }
    var fields = { code: code, name: $("wb-name").value.trim(), applicant: $("wb-applicant").value.trim(),
      district: $("wb-district").value.trim(), project_type: $("wb-type").value };
    var missing = [["name", "项目名称"], ["applicant", "建设单位"], ["district", "行政区"]].filter(function (f) { return !fields[f[0]]; });
    if (missing.length) {
      saveMessage(errorHtml({ message_zh: "请填写" + missing.map(function (f) { return f[1]; }).join("、") }), false);
      setState("save-error");
      return;
    }
    var sub = submission();
    if (sub.error) { saveMessage(errorHtml(sub.error), false); setState("save-error"); return; }
    setState("saving");
    var base = cfg.api + "/projects/" + encodeURIComponent(code);
    var existed = false;
    call(base).then(function () {
      existed = true;
      var req = withFields(sub, {});
      req.method = "PUT";
      if (sub.json) req.body = JSON.stringify(sub.json);
      return call(base + "/parcels", req);
    }, function (err) {
      if (err.status !== 404) throw err;
      return call(cfg.api + "/projects", withFields(sub, fields));
    }).then(function () {
      return call(base + "/checks", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ blueprint_version: $("wb-version").value, declared: declaredValues() }) });
    }).then(function (r) {
      return call(base).then(function (p) { return [r.body, p.body]; });
    }).then(function (both) {
      var project = both[1];
      showResult(both[0], project);
      var n = (project.checks || []).length;
      showPoolState();
      saveMessage("已保存到项目库：" + U.esc(project.code) + "（" + (existed ? "已更新地块，保留此前 " +
        (project.parcel_revisions || []).length + " 套地块" : "新建项目") + "，共 " + n + " 次检测）。" +
        ' <a href="/viewer?project=' + encodeURIComponent(project.code) + '">在联审地图中查看 Open in the meeting map</a>', true);
    }, function (err) {
      saveMessage(errorHtml(err), false);
      setState("save-error");
    });
  }

  /* ---- start ---- */
  /* project types grouped: one optgroup per group, the group itself first (either level may be chosen) */
  function fillSelects(types) {
    WB.types = {};
    var select = $("wb-type");
    var groups = {};
    types.forEach(function (t) {
      WB.types[t.key] = t;
      var group = t.group || t.key;
      if (!groups[group]) {
        groups[group] = document.createElement("optgroup");
        groups[group].label = (t.group_name_zh || t.name_zh) + " " + (t.group_name_en || t.name_en);
        select.appendChild(groups[group]);
      }
      var opt = document.createElement("option");
      opt.value = t.key;
      opt.textContent = t.is_group === false ? "　" + t.name_zh + " " + t.name_en : t.name_zh + " " + t.name_en;
      groups[group].appendChild(opt);
    });
    var versions = $("wb-version");
    cfg.versions.forEach(function (v) {
      var opt = document.createElement("option");
      opt.value = v.version;
      opt.textContent = v.version + "（已发布 published）";
      opt.selected = v.version === cfg.version;
      versions.appendChild(opt);
    });
    if (!cfg.versions.length) showInputError({ code: "no_published_blueprint", message_zh: "尚无已发布的蓝图版本：请联系管理员发布蓝图" });
  }

  function showUser(me) {
    OB.me = me; // the 预警 block offers 确认预警 to the roles that may acknowledge
    WB.canScreen = !!MAY_SCREEN[me.role];
    $("wb-user").innerHTML = "当前用户 " + U.esc(me.name) + "（" + U.esc(me.role_zh) + ' <span class="ob-en">' + U.esc(me.role_en) + "</span>）" +
      (WB.canScreen ? "" : '<br><span class="ob-warn">只读：该角色可查看，不能检测或保存 Read only for this role</span>');
    $("wb-inputs").disabled = !WB.canScreen;
    $("wb-run").disabled = !WB.canScreen;
    $("wb-type").disabled = !WB.canScreen;
    $("wb-declared").disabled = !WB.canScreen;
  }

  WB.init = function (map, config) {
    OB = window.OneBlueprint;
    U = OB.util;
    cfg = config;
    document.body.classList.add("wb-mode");
    wireFile();
    wireDraw(map);
    wireCoords();
    wireCrs();
    window.OneBlueprintPlanning.setLandUses(cfg.landUses);
    fillLandUses(cfg.landUses);
    $("wb-form").addEventListener("submit", screen);
    $("wb-save-form").addEventListener("submit", save);
    $("wb-code").addEventListener("change", showPoolState);
    Promise.all([call(cfg.api + "/me"), call(cfg.api + "/project-types")]).then(function (both) {
      showUser(both[0].body);
      fillSelects(both[1].body);
      setState("ready");
    }, function (err) {
      showInputError(err);
      $("wb-user").innerHTML = '<a href="' + U.esc(cfg.login) + '?next=/workbench">请登录 Sign in</a>';
    });
  };
})();
