"""Brain tokens: the V2C clusters on the cortex, what each token reads and where in the image it acts.

One test image of the selected subject goes through the run (``return_attention=True``, cached per
run, subject and image); the maps come from ``brainit_core.viz``. On the twin, the ground truth
(areas, pRFs, category patches) can be shown next to the learned maps.
"""
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from brainit_core.ui import loaders
from brainit_core.ui.attention import attention_maps, ground_truth
from brainit_core.ui.context import current, require_ready
from brainit_core.viz import attention as att
from brainit_core.viz import export
from brainit_core.viz import images as vimg
from brainit_core.viz.surface import VIEWS, category_colors, surface_figure

HEAD_LABELS = {"semantic": "semantic head", "lowlevel": "low-level head"}
SURFACE_H = 430

ctx = current()
st.title("Brain tokens")
st.caption("Brain-IT groups voxels into functional clusters (the V2C map, shared by all subjects); each "
           "cluster becomes one brain token, a weighted summary of its voxels. Query tokens, one per image "
           "location, then read from the brain tokens by cross-attention.")
if not require_ready(ctx):
    st.stop()

ds, run, sd, test_ids = loaders.run_and_subject(ctx)

# 1. choices
c = st.columns([2, 2, 2, 1.4, 1.4])
image_id = c[0].selectbox("Test image", test_ids, key="bt_image", format_func=lambda i: f"image {i}")
head = c[1].radio("Head", list(HEAD_LABELS), key="bt_head", format_func=HEAD_LABELS.get, horizontal=True,
                  help="The semantic and the low-level head are separate networks with their own tokenizer.")
view = c[2].selectbox("Camera", list(VIEWS), index=list(VIEWS).index("posterior"), key="bt_view",
                      help="The same view of both hemispheres (each has its own camera).")
mesh = c[3].selectbox("Surface", ["inflated", "pial"], key="bt_mesh")
gt = ground_truth(ctx.dataset, ctx.subject) if ctx.is_twin else None
show_gt = c[4].toggle("Ground truth", value=False, key="bt_gt", disabled=gt is None,
                      help="The twin knows each vertex's area, pRF and category selectivity.")
show_gt = show_gt and gt is not None

maps = attention_maps(ctx.run, ctx.device, run.checkpoint_sha256, ctx.dataset, ctx.subject, image_id)
n_tokens = maps.n_tokens
image = ds.images([image_id])[0]
verts, hemis = sd.vertices, sd.hemispheres
hover = {"area": gt["area_names"]} if gt is not None else None
names = [f"token {k}" for k in range(n_tokens)]
sizes = np.bincount(maps.clusters, minlength=n_tokens)


def surface(values, **kw):
    return surface_figure(values, verts, hemis, mesh=mesh, view=view, hover=hover, height=SURFACE_H, **kw)


def chart(fig, key):
    st.plotly_chart(fig, key=key, config={"displaylogo": False}, width="stretch")


def gt_panel(key, default_map="areas", location=None):
    """The twin's ground truth on the cortex (a choice of maps)."""
    options = ["areas", "pRF x (deg)", "eccentricity (deg)", "preferred category"]
    if location is not None:
        options.insert(0, "pRF drive at the location")
    pick = st.selectbox("Ground-truth map", options, index=options.index(default_map), key=key)
    if pick == "areas":
        areas = sorted(set(gt["area_names"]) - {""})
        ids = np.array([areas.index(a) if a in areas else np.nan for a in gt["area_names"]], dtype=float)
        return surface(ids, categorical=True, category_names=areas, n_categories=len(areas),
                       title="truth: visual areas and category patches", value_name="area")
    if pick == "pRF x (deg)":
        return surface(gt["x"], symmetric=True, title="truth: pRF x (deg, + right field)", value_name="pRF x")
    if pick == "eccentricity (deg)":
        return surface(np.hypot(gt["x"], gt["y"]), cmap="viridis", title="truth: pRF eccentricity (deg)",
                       value_name="eccentricity")
    if pick == "preferred category":
        cats = gt["categories"]
        return surface(np.argmax(gt["tuning_category"], axis=1), categorical=True, category_names=cats,
                       n_categories=len(cats), title="truth: preferred category", value_name="category")
    drive = att.prf_response(gt["x"], gt["y"], gt["sigma"], *location)
    return surface(drive, cmap="magma", vmin=0, vmax=1, title="truth: pRF drive by the location",
                   value_name="pRF drive")


# 2. the V2C map
st.subheader("Brain tokens on the cortex")
st.caption(f"Each colour is one V2C cluster (= one brain token) of {ctx.subject}'s {sd.n_vertices} vertices; "
           "grey = outside the subject's visual region. Drag to rotate; hover for vertex, area and token.")
cols = st.columns(2) if show_gt else [st.container()]
with cols[0]:
    chart(surface(maps.clusters, categorical=True, category_names=names, n_categories=n_tokens,
                  title="learned: V2C clusters", value_name="token"), "bt_clusters")
if show_gt:
    with cols[1]:
        chart(gt_panel("bt_gt_map_clusters"), "bt_gt_clusters")

# 3. one token
st.divider()
st.subheader("One token: the voxels it reads and where the image attends to it")
levels = maps.levels[head]
t = st.columns([2, 3])
token = t[0].selectbox("Token", list(range(n_tokens)), key="bt_token",
                       format_func=lambda k: f"token {k} ({sizes[k]} voxels)")
level = 0
if len(levels) > 1:
    level = t[1].select_slider("Pyramid level of the low-level queries", list(range(len(levels))), key="bt_level",
                               format_func=lambda l: f"{levels[l][0]} ({levels[l][1][0]}x{levels[l][1][1]})")
else:
    t[1].caption(f"The semantic queries form a {levels[0][1][0]}x{levels[0][1][1]} grid over the image.")
grid = maps.token_grid(head, level, token)
cx, cy = att.attention_centroid(grid)
markers = [{"x": [vimg.centroid_to_image(cx, cy)[0]], "y": [vimg.centroid_to_image(cx, cy)[1]],
            "name": "attention centroid", "symbol": "x", "color": "#00e5ff", "text": ["attention centroid"]}]
if show_gt and sizes[token]:
    rf = att.receptive_field_centroids(maps.clusters, maps.tokenizer[head], gt["x"], gt["y"], n_tokens)[token]
    px, py = vimg.degrees_to_image(rf[0], rf[1])
    markers.append({"x": [px], "y": [py], "name": "truth: mean pRF of its voxels", "symbol": "circle-open",
                    "color": "#7CFC00", "text": [f"pRF centroid ({rf[0]:+.1f}, {rf[1]:+.1f}) deg"]})
u = st.columns([3, 2])
with u[0]:
    if sizes[token]:
        chart(surface(maps.token_vertices(head, token), cmap="YlOrRd", vmin=0,
                      title=f"token {token}: tokenizer attention ({HEAD_LABELS[head]})", value_name="attention"),
              "bt_token_surface")
    else:
        st.info(f"Token {token} has no voxels in {ctx.subject}: it is a constant learned token.")
with u[1]:
    chart(vimg.attention_figure(image, grid, markers=markers, title=f"cross-attention on token {token} "
                                f"({levels[level][0]})"), "bt_token_image")
    st.caption("Brighter = the query tokens at that location draw more on this brain token.")
    if show_gt and sizes[token]:
        share = pd.Series(gt["area_names"][maps.clusters == token]).replace("", "other").value_counts(normalize=True)
        st.caption("Truth, areas of its voxels: " + ", ".join(f"{a} {p:.0%}" for a, p in share.head(4).items()))

# 4. one image location
st.divider()
st.subheader("One image location: which tokens feed it")
s = st.columns([1, 1, 2])
x = s[0].slider("x (left → right)", 0.0, 1.0, 0.25, 0.05, key="bt_x")
y = s[1].slider("y (top → bottom)", 0.0, 1.0, 0.5, 0.05, key="bt_y")
hw = maps.level_grid(head, level)
cell = att.grid_cell(hw, x, y)
s[2].caption(f"The query at row {cell[0]}, column {cell[1]} of the {hw[0]}x{hw[1]} grid "
             f"({levels[level][0]}, {HEAD_LABELS[head]}). Its cortex map = token weights x tokenizer attention.")
weights = maps.location_weights(head, level, x, y)
loc_map = att.vertex_map(weights, maps.tokenizer[head], maps.clusters)
v = st.columns([2, 3, 3] if show_gt else [2, 3])
with v[0]:
    chart(vimg.attention_figure(image, None, cell=(hw, cell), markers=[
        {"x": [x], "y": [y], "name": "location", "symbol": "cross", "color": "#00e5ff", "text": ["location"]}],
        height=260), "bt_loc_image")
    bar = go.Figure(go.Bar(x=names, y=weights, marker_color=list(category_colors(n_tokens)),
                           hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    bar.update_layout(height=220, margin={"l": 0, "r": 0, "t": 24, "b": 0}, title={"text": "attention over tokens",
                      "font": {"size": 13}}, yaxis={"title": None}, xaxis={"showticklabels": n_tokens <= 32})
    chart(bar, "bt_loc_bar")
with v[1]:
    chart(surface(loc_map, cmap="YlOrRd", vmin=0, title="learned: vertices feeding the location",
                  value_name="weight"), "bt_loc_surface")
if show_gt:
    with v[2]:
        chart(gt_panel("bt_gt_map_loc", "pRF drive at the location", location=(x, y)), "bt_gt_loc")

# 5. contralaterality
st.divider()
st.subheader("Contralaterality")
con = att.maps_contralaterality(maps, head, hemis)
k = st.columns(3)
k[0].metric("Contralaterality index", f"{con.index:+.3f}" if np.isfinite(con.index) else "n/a",
            help="Mean over tokens of (attention-centroid x in [-1, 1]) x (left minus right share of the "
                 "token's voxels, weighted by tokenizer attention). > 0: tokens of the left hemisphere look "
                 "at the right of the image and vice versa, as in the visual cortex; about 0 by chance.")
k[1].metric("Lateralised tokens on the contralateral side",
            f"{con.fraction:.0%}" if np.isfinite(con.fraction) else "n/a",
            help="Among tokens with at least 75% of their voxel weight in one hemisphere.")
k[2].metric("Tokens with voxels", f"{int((sizes > 0).sum())} / {n_tokens}")
with st.expander("Per-token values"):
    st.dataframe(pd.DataFrame({"token": range(n_tokens), "voxels": sizes,
                               "left - right share": np.round(con.balance, 3),
                               "centroid x": np.round(con.centroid_x, 3), "score": np.round(con.score, 3)}),
                 hide_index=True, width="stretch")

# 6. export
st.divider()
st.subheader("Export a map")
choices = {"V2C clusters": maps.clusters.astype(np.float64),
           f"token {token} tokenizer attention ({head})": np.nan_to_num(maps.token_vertices(head, token)),
           f"location ({x:.2f}, {y:.2f}) map ({head})": loc_map}
e = st.columns([3, 1, 2])
which = e[0].selectbox("Map", list(choices), key="bt_export_map")
fmt = e[1].radio("Format", list(export.FORMATS), key="bt_export_fmt", format_func=lambda f: f.upper())
stem = f"{ctx.subject}_img{image_id}_" + "".join(ch if ch.isalnum() else "_" for ch in which).strip("_")
e[2].download_button(f"Download {fmt.upper()} (lh + rh, fsaverage5)",
                     export.surface_map_zip(stem, choices[which], verts, hemis, fmt=fmt),
                     file_name=f"{stem}_{fmt}.zip", mime="application/zip", key="bt_export")
e[2].caption("Full fsaverage5 hemispheres (10,242 vertices each); vertices outside the subject's set are NaN.")
