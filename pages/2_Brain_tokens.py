"""Brain tokens: the V2C clusters on the cortex, what each token reads and where in the image it acts.

One test image of the selected subject goes through the run (``return_attention=True``, cached per
run, subject and image); the numbers come from ``brainit_core.analysis``, the figures from
``brainit_core.viz``. On the twin, the ground truth (areas, pRFs, category patches) can be shown
next to the learned maps. The contralaterality index is the benchmark's, on this image's attention.
"""
import numpy as np
import streamlit as st

from brainit_core.analysis import attention as att
from brainit_core.analysis.maps import grid_cell, token_area_shares, vertex_map
from brainit_core.ui import cortex, loaders
from brainit_core.ui.attention import attention_maps, contralaterality_panel, ground_truth, ground_truth_map
from brainit_core.ui.context import current, require_ready
from brainit_core.viz import images as vimg

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
c = st.columns([2, 3, 1.4])
image_id = c[0].selectbox("Test image", test_ids, key="bt_image", format_func=lambda i: f"image {i}")
head = c[1].radio("Head", list(HEAD_LABELS), key="bt_head", format_func=HEAD_LABELS.get, horizontal=True,
                  help="The semantic and the low-level head are separate networks with their own tokenizer.")
gt = ground_truth(ctx.dataset, ctx.subject) if ctx.is_twin else None
show_gt = c[2].toggle("Ground truth", value=False, key="bt_gt", disabled=gt is None,
                      help="The twin knows each vertex's area, pRF and category selectivity.")
show_gt = show_gt and gt is not None
display = cortex.cortex_display(ctx, sd, gt["area_names"] if gt is not None else None)
opts = cortex.controls(display, "bt")

maps = attention_maps(ctx.run, ctx.device, run.checkpoint_sha256, ctx.dataset, ctx.subject, image_id)
n_tokens = maps.n_tokens
image = ds.images([image_id])[0]
hover = {"area": gt["area_names"]} if gt is not None and opts.atlas is None else None
names = [f"token {k}" for k in range(n_tokens)]
sizes = np.bincount(maps.clusters, minlength=n_tokens)


def brain(values, key, **kw):
    cortex.show(display, values, opts, key, hover=hover, height=SURFACE_H, **kw)


def chart(fig, key):
    st.plotly_chart(fig, key=key, config={"displaylogo": False}, width="stretch")


# 2. the V2C map
st.subheader("Brain tokens on the cortex")
st.caption(f"Each colour is one V2C cluster (= one brain token) of {ctx.subject}'s {sd.n_vertices} {display.units}; "
           "grey = outside the subject's visual region. Drag to rotate; hover for vertex, area and token.")
cols = st.columns(2) if show_gt else [st.container()]
with cols[0]:
    brain(maps.clusters, "bt_clusters", categorical=True, category_names=names, n_categories=n_tokens,
          title="learned: V2C clusters", value_name="token")
if show_gt:
    with cols[1]:
        values, kw = ground_truth_map(gt, "bt_gt_map_clusters")
        brain(values, "bt_gt_clusters", **kw)

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
rf = None
if show_gt and sizes[token]:
    rf = att.receptive_field_centroids(maps.clusters, maps.tokenizer[head], gt["x"], gt["y"], n_tokens)[token]
markers = vimg.centroid_markers(att.attention_centroid(grid), rf)
u = st.columns([3, 2])
with u[0]:
    if sizes[token]:
        brain(maps.token_vertices(head, token), "bt_token_surface", cmap="YlOrRd", vmin=0,
              title=f"token {token}: tokenizer attention ({HEAD_LABELS[head]})", value_name="attention",
              unit="share of the token")
    else:
        st.info(f"Token {token} has no voxels in {ctx.subject}: it is a constant learned token.")
with u[1]:
    chart(vimg.attention_figure(image, grid, markers=markers, title=f"cross-attention on token {token} "
                                f"({levels[level][0]})"), "bt_token_image")
    st.caption("Brighter = the query tokens at that location draw more on this brain token.")
    if show_gt and sizes[token]:
        share = token_area_shares(gt["area_names"], maps.clusters, token)
        st.caption("Truth, areas of its voxels: " + ", ".join(f"{a} {p:.0%}" for a, p in share))

# 4. one image location
st.divider()
st.subheader("One image location: which tokens feed it")
s = st.columns([1, 1, 2])
x = s[0].slider("x (left → right)", 0.0, 1.0, 0.25, 0.05, key="bt_x")
y = s[1].slider("y (top → bottom)", 0.0, 1.0, 0.5, 0.05, key="bt_y")
hw = maps.level_grid(head, level)
cell = grid_cell(hw, x, y)
s[2].caption(f"The query at row {cell[0]}, column {cell[1]} of the {hw[0]}x{hw[1]} grid "
             f"({levels[level][0]}, {HEAD_LABELS[head]}). Its cortex map = token weights x tokenizer attention.")
weights = maps.location_weights(head, level, x, y)
loc_map = vertex_map(weights, maps.tokenizer[head], maps.clusters)
v = st.columns([2, 3, 3] if show_gt else [2, 3])
with v[0]:
    chart(vimg.attention_figure(image, None, cell=(hw, cell), markers=[
        {"x": [x], "y": [y], "name": "location", "symbol": "cross", "color": "#00e5ff", "text": ["location"]}],
        height=260), "bt_loc_image")
    chart(vimg.token_weights_figure(weights, names), "bt_loc_bar")
with v[1]:
    brain(loc_map, "bt_loc_surface", cmap="YlOrRd", vmin=0, title="learned: vertices feeding the location",
          value_name="weight", unit="a.u.")
if show_gt:
    with v[2]:
        values, kw = ground_truth_map(gt, "bt_gt_map_loc", "pRF drive at the location", (x, y))
        brain(values, "bt_gt_loc", **kw)

# 5. contralaterality
st.divider()
st.subheader("Contralaterality")
st.caption(f"Where the brain tokens of each hemisphere look in this image ({HEAD_LABELS[head]}). The benchmark "
           "reports the same index for the low-level head over all test images.")
contralaterality_panel(maps, head, sd.hemispheres)

# 6. export
st.divider()
st.subheader("Export a map")
choices = {"V2C clusters": maps.clusters.astype(np.float64),
           f"token {token} tokenizer attention ({head})": np.nan_to_num(maps.token_vertices(head, token)),
           f"location ({x:.2f}, {y:.2f}) map ({head})": loc_map}
cortex.export_panel(display, choices, f"{ctx.subject}_img{image_id}_")
