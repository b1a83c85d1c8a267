"""Training data from an existing dynamical core (optional extra: ``pip install .[datagen]``).

* ``python -m mlscam.datagen.held_suarez`` -- Held-Suarez runs of the ``dinosaur`` dycore, CF NetCDF output.
* ``python -m mlscam.datagen.courant FILE.nc`` -- per-latitude Courant numbers of any lat-lon file.

Nothing else in mlscam imports this package; ``dycore`` is the only module that needs dinosaur/JAX.
"""
