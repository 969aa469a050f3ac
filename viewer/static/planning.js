/* One Blueprint 一张蓝图: a check's planning conditions (规划条件, 控规地块) and regional assessments (区域评估)
 * in words and colour, for the meeting viewer's panel and the workbench's result (one renderer for both). */
(function () {
  "use strict";

  var STATUS = {
    exempt: ["可复用（免于单独评估）", "Reusable (exempt)"],
    partial: ["部分覆盖（须补充评估）", "Partly covered"],
    expired: ["已过期（须重新评估）", "Expired"],
    due: ["须单独评估", "Due"],
  };
  var OUTCOME = {
    conflict: ["不符合规划条件", "Breaches the plan"],
    pass: ["符合规划条件", "Within the plan"],
    listed: ["适用（未申报指标）", "Applies (nothing declared)"],
  };
  var INDICATOR = {
    land_use: ["用地性质", "Land use"], far: ["容积率", "FAR"], building_density: ["建筑密度", "Building density"],
    green_ratio: ["绿地率", "Green ratio"], height_m: ["建筑高度", "Height"],
  };
  var BOUND = { max: "不大于", min: "不小于", compatible: "兼容" };
  var UNIT = { far: "", building_density: "%", green_ratio: "%", height_m: " m" };
  var LIMITS = [["far_max", "far", "max"], ["far_min", "far", "min"], ["building_density_max", "building_density", "max"],
    ["green_ratio_min", "green_ratio", "min"], ["height_max_m", "height_m", "max"]];
  var landUses = {};

  function esc(value) {
    return String(value === undefined || value === null ? "" : value).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function area(value) {
    var n = Number(value);
    return isFinite(n) ? n.toLocaleString("zh-CN", { minimumFractionDigits: 2, maximumFractionDigits: 2 }) : "–";
  }

  function value(indicator, v) {
    if (v === null || v === undefined || v === "") return "–";
    return String(v) + (UNIT[indicator] || "");
  }

  function code(c) {
    if (c === null || c === undefined || c === "") return "–";
    var u = landUses[c];
    return u ? u[0] + "（" + c + "）" : String(c);
  }

  function limitsText(limits) {
    var parts = LIMITS.filter(function (l) { return limits && limits[l[0]] !== null && limits[l[0]] !== undefined; })
      .map(function (l) { return INDICATOR[l[1]][0] + BOUND[l[2]] + " " + value(l[1], limits[l[0]]); });
    return parts.length ? parts.join("；") : "无指标限制";
  }

  function findingRow(f) {
    var use = f.indicator === "land_use";
    var ok = f.ok === true ? ["ob-ok", "符合 within"] : f.ok === false ? ["ob-breach", "超出 breach"] : ["", "–"];
    return '<tr class="ob-finding ' + ok[0] + '" data-indicator="' + esc(f.indicator) + '"><td>' +
      esc((INDICATOR[f.indicator] || [f.name_zh])[0]) + "</td><td>" + esc(use ? code(f.declared) : value(f.indicator, f.declared)) +
      "</td><td>" + esc(use ? code(f.limit) : BOUND[f.bound] + " " + value(f.indicator, f.limit)) + '</td><td class="num">' +
      esc(use || f.margin === null || f.margin === undefined ? "–" : value(f.indicator, f.margin)) + '</td><td class="ob-result">' +
      esc(ok[1]) + "</td></tr>";
  }

  function conditionHtml(parcelId, c) {
    var o = OUTCOME[c.outcome] || [c.outcome, c.outcome];
    var land = c.land_use ? (c.land_use.name_zh || "") + "（" + (c.land_use.code || "") + "）" : "–";
    var body = (c.findings || []).length ?
      '<table class="ob-table ob-findings"><tr><th>指标 Indicator</th><th>申报 Declared</th><th>规划限值 Limit</th>' +
        "<th>余量 Margin</th><th>结论 Result</th></tr>" + c.findings.map(findingRow).join("") + "</table>" :
      '<p class="ob-limits">规划指标 Limits：' + esc(limitsText(c.limits)) + "</p>";
    return '<div class="ob-condition ob-outcome-' + esc(c.outcome) + '" data-feature="' + esc(c.feature_id) + '">' +
      "<p><b>地块 " + esc(parcelId) + "</b> · 控规地块 " + esc(c.layer) + ":" + esc(c.feature_id) + "（重叠 " +
      area(c.overlap_m2) + " m²） · 用地性质 " + esc(land) + ' <span class="ob-outcome">' + esc(o[0]) +
      ' <span class="ob-en">' + esc(o[1]) + "</span></span></p>" +
      ((c.findings || []).length ? '<p class="ob-limits">规划指标 Limits：' + esc(limitsText(c.limits)) + "</p>" : "") + body + "</div>";
  }

  function conditionsHtml(check) {
    var items = [];
    (check.parcels || []).forEach(function (p) {
      (p.conditions || []).forEach(function (c) { items.push(conditionHtml(p.parcel_id, c)); });
    });
    var declared = check.declared ? Object.keys(INDICATOR).filter(function (k) {
      return check.declared[k] !== undefined && check.declared[k] !== null;
    }).map(function (k) {
      return INDICATOR[k][0] + " " + (k === "land_use" ? code(check.declared[k]) : value(k, check.declared[k]));
    }).join("；") : "";
    return '<h3>规划条件 <span class="ob-en">Planning conditions</span></h3><div id="ob-plan-conditions">' +
      '<p class="ob-declared">申报指标 Declared：' + esc(declared || "未申报（仅列出适用的规划条件） none declared") + "</p>" +
      (items.length ? items.join("") : "<p>地块不在控规地块范围内 <span class=\"ob-en\">No detailed-plan parcel here</span></p>") +
      "</div>";
  }

  function documentsText(docs) {
    return (docs || []).map(function (d) {
      return (d.number || "无文号") + "（有效期至 " + (d.valid_until || "–") + (d.valid === false ? "，已过期" : "") + "）";
    }).join("；");
  }

  function assessmentsHtml(check) {
    var rows = [];
    (check.parcels || []).forEach(function (p) {
      (p.assessments || []).forEach(function (a) {
        var s = STATUS[a.status] || [a.status, a.status];
        rows.push('<tr class="ob-assessment ob-status-' + esc(a.status) + '" data-type="' + esc(a.type) + '"><td>' +
          esc(p.parcel_id) + "</td><td>" + esc(a.name_zh || a.type) + '</td><td class="ob-status">' + esc(s[0]) +
          '</td><td class="num">' + area(a.uncovered_m2) + '</td><td class="ob-docs">' + esc(documentsText(a.documents)) + "</td></tr>");
      });
    });
    if (!rows.length) return "";
    return '<h3>区域评估 <span class="ob-en">Regional assessments</span></h3><table class="ob-table" id="ob-assessments">' +
      "<tr><th>地块</th><th>评估事项 Assessment</th><th>状态 Status</th><th>未覆盖 m²</th><th>成果文件 Documents</th></tr>" +
      rows.join("") + "</table>";
  }

  /* nothing to show for checks made before issue 14 (no conditions, no assessments) */
  function html(check) {
    var any = (check.parcels || []).some(function (p) { return p.conditions || p.assessments; });
    return any ? conditionsHtml(check) + assessmentsHtml(check) : "";
  }

  window.OneBlueprintPlanning = {
    html: html,
    limitsText: limitsText,
    setLandUses: function (list) {
      landUses = {};
      (list || []).forEach(function (u) { landUses[u[0]] = [u[1], u[2]]; });
    },
    STATUS: STATUS,
  };
})();
