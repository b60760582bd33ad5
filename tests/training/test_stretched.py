"""Stretched grid: a fine mesh over the area of interest, and its chosen share of the loss."""

from __future__ import annotations

import pytest
import torch
from storm_sample import REPO

from squall.data.coordinates import in_box
from squall.graphs.from_dataset import create_graph_for_dataset
from squall.graphs.io import load_graph
from squall.training.losses import build_loss
from squall.training.scalers import build_scalers

BOX = (35.0, 47.5, -85.0, -70.0)  # configs/training/stretched.yaml and graph/stretched_box.yaml


def storm_attributes(graph) -> dict[str, torch.Tensor]:
    latlon = torch.rad2deg(graph["data"].x.double())
    return {
        "area_weight": graph["data"].area_weight,
        "latitude": latlon[:, 0],
        "longitude": latlon[:, 1],
    }


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.9])
def test_region_gets_its_fraction_of_the_loss_weight(storm_inputs, fraction):
    graph, _ = load_graph(storm_inputs["graph"])
    attributes = storm_attributes(graph)
    settings = {
        "area": {
            "node_attribute": "area_weight",
            "region": {"box": list(BOX)},
            "region_fraction": fraction,
        }
    }
    scalers = build_scalers(settings, ["msl"], {}, attributes)
    loss = build_loss({"name": "mse", "scalers": ["*"]}, scalers)
    weight = loss.weight.flatten()  # the grid weights the loss uses, normalised to sum 1
    inside = torch.from_numpy(in_box(attributes["latitude"], attributes["longitude"], BOX))
    assert 0 < inside.sum() < len(inside)
    assert float(weight[inside].sum()) == pytest.approx(fraction, rel=1e-5)
    # Within the region (and outside it) the area weights keep their proportions.
    area = attributes["area_weight"]
    ratio = weight[inside] / area[inside]
    assert torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-5)

    # The loss of an error confined to the region is `fraction` of a uniform error everywhere.
    prediction = torch.zeros(1, 1, 1, len(inside), 1)
    everywhere = loss(prediction, torch.ones_like(prediction))
    only_region = loss(prediction, inside.float().reshape(prediction.shape))
    assert float(only_region / everywhere) == pytest.approx(fraction, rel=1e-5)


def test_region_scaler_rejects_bad_settings(storm_inputs):
    graph, _ = load_graph(storm_inputs["graph"])
    attributes = storm_attributes(graph)
    base = {"node_attribute": "area_weight", "region": {"box": list(BOX)}}
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        build_scalers({"area": base | {"region_fraction": 1.0}}, ["msl"], {}, attributes)
    nowhere = {"node_attribute": "area_weight", "region": {"box": [-10, 0, 0, 10]}}
    with pytest.raises(ValueError, match="holds 0 of"):
        build_scalers({"area": nowhere | {"region_fraction": 0.5}}, ["msl"], {}, attributes)
    with pytest.raises(ValueError, match="not a data-node attribute"):
        mask = {"node_attribute": "area_weight", "region": {"mask": "cutout_mask"}}
        build_scalers({"area": mask | {"region_fraction": 0.5}}, ["msl"], {}, attributes)


def test_stretched_box_graph_is_fine_inside_and_coarse_outside(storm_inputs, tmp_path):
    path = create_graph_for_dataset(
        REPO / "configs/training/graph/stretched_box.yaml",
        storm_inputs["dataset"],
        tmp_path / "graph.pt",
    )
    stretched, _ = load_graph(path)
    uniform, _ = load_graph(storm_inputs["graph"])  # limited_area.yaml: level 5 everywhere

    def count(graph, inside: bool) -> int:
        latlon = torch.rad2deg(graph["hidden"].x.double())
        mask = torch.from_numpy(in_box(latlon[:, 0], latlon[:, 1], BOX))
        return int(mask.sum() if inside else (~mask).sum())

    # Inside the box the stretched mesh is as fine as the level-5 one; outside, much coarser.
    assert count(stretched, inside=True) == count(uniform, inside=True)
    assert count(stretched, inside=False) < count(uniform, inside=False) / 2
