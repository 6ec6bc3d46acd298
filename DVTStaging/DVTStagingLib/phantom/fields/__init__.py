"""The `fields` phantom style: an independently drawn "external site", held out of all training.

Same clinical cues as the training style, other code for shapes (random polygons, filtered noise,
warped Voronoi compartments), textures (filtered noise only), cues (its own table, lesion.py) and
scanner (slice-profile sampling, coil noise models, smooth random bias, storage types).
Entry point: `study.make_study(seed, stages)`; registered in `phantom.styles`.
"""
