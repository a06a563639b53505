"""Geometry and constants of the Boyle–Berri–Cohen (2012) worm body, in owjax's body units.

Units used throughout :mod:`owjax.body`: length **mm**, time **s**, force **µN**. Hence stiffness
in µN/mm (1 N/m = 1e3 µN/mm), damping and drag in µN·s/mm (1 kg/s = 1e3 µN·s/mm).

Every constant below is checked against the two reference implementations (read, not copied):

* BBC: OpenSourceBrain/CelegansNeuromechanicalGaitModulation ``WormSim/Model/worm.cc`` (the code
  behind Boyle, Berri & Cohen 2012, Front. Comput. Neurosci. 6:10);
* CEL: openworm/CE_locomotion ``WormBody.h/.cpp`` (R. Beer's clean re-implementation).

=========================  ==========================================  ===============================
constant                   value (SI, as in the reference code)        reference
=========================  ==========================================  ===============================
segments / rods            48 / 49                                     BBC ``NSEG``, ``NBAR``
body length L              1e-3 m                                      BBC ``L_seg = 1e-3/NSEG``
diameter D                 80e-6 m                                     BBC ``D``; CEL ``2 R_min``
radius R_i                 D/2 |sin(acos((i − 24)/(24 + 0.2)))|        both
k_PE (lateral passive)     (48/24)·10e-3 = 0.02 kg/s²                  BBC ``k_PE``; CEL ``kappa_L``
D_PE                       0.025 k_PE                                  BBC; CEL ``beta_L``
k_AE (muscle)              20 k_PE                                     BBC; CEL ``kappa_M0``
D_AE                       5·20·D_PE = 100 D_PE                         BBC; CEL ``beta_M0``
k_DE (diagonal)            350 k_PE                                    both
D_DE                       0.01 k_DE                                   both
lateral rest length L0_P   sqrt(L_seg² + (R_i − R_{i+1})²)              both
diagonal rest length L0_D  sqrt(L_seg² + (R_i + R_{i+1})²)              both
muscle minimum length      (1 − 0.65 (R_i + R_{i+1})/D) L0_P            both
stretch stiffening         + (2 ΔL)^4 for ΔL = L − L0_P > 0 (ΔL in m)  both (CEL NOTE 2)
drag, agar (whole body)    C_par 3.2e-3, C_perp 128e-3 kg/s             both
drag, water                C_par 3.3e-6, C_perp 5.2e-6 kg/s             both
drag per rod               total / (2·(NSEG + 1))                       CEL (BBC's macro gives
                                                                        total/(2·NSEG + 1), NOTE 1)
medium interpolation       C = (C_agar − C_water)·m + C_water, m∈[0,1]  both
muscle time constant       0.1 s                                        BBC ``T_muscle``
=========================  ==========================================  ===============================
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "N_SEGMENTS",
    "N_RODS",
    "BODY_LENGTH_MM",
    "DIAMETER_MM",
    "SEGMENT_LENGTH_MM",
    "STIFFNESS_N_PER_M_TO_UN_PER_MM",
    "DRAG_KG_PER_S_TO_UN_S_PER_MM",
    "rod_radii_mm",
    "lateral_rest_length_mm",
    "diagonal_rest_length_mm",
    "muscle_min_length_mm",
    "BodyConstants",
    "BBC_CONSTANTS",
]

N_SEGMENTS = 48
N_RODS = N_SEGMENTS + 1
BODY_LENGTH_MM = 1.0
DIAMETER_MM = 80e-3
SEGMENT_LENGTH_MM = BODY_LENGTH_MM / N_SEGMENTS

#: 1 N/m (= kg/s²) in µN/mm
STIFFNESS_N_PER_M_TO_UN_PER_MM = 1e3
#: 1 kg/s (= N·s/m) in µN·s/mm
DRAG_KG_PER_S_TO_UN_S_PER_MM = 1e3


def rod_radii_mm(n_segments: int = N_SEGMENTS, diameter_mm: float = DIAMETER_MM) -> np.ndarray:
    """Radius of each of the ``n_segments + 1`` rods (mm): the BBC prolate-ellipse profile.

    R_i = D/2 · |sin(acos((i − n/2) / (n/2 + 0.2)))|; the 0.2 keeps the tips at a finite radius
    (5.1 µm for n = 48).
    """
    i = np.arange(n_segments + 1, dtype=np.float64)
    half = n_segments / 2.0
    return diameter_mm / 2.0 * np.abs(np.sin(np.arccos((i - half) / (half + 0.2))))


def lateral_rest_length_mm(radii_mm: np.ndarray, segment_length_mm: float = SEGMENT_LENGTH_MM) -> np.ndarray:
    """Rest length of the dorsal/ventral (lateral) elements of each segment (mm)."""
    return np.sqrt(segment_length_mm**2 + (radii_mm[:-1] - radii_mm[1:]) ** 2)


def diagonal_rest_length_mm(radii_mm: np.ndarray, segment_length_mm: float = SEGMENT_LENGTH_MM) -> np.ndarray:
    """Rest length of the two diagonal elements of each segment (mm)."""
    return np.sqrt(segment_length_mm**2 + (radii_mm[:-1] + radii_mm[1:]) ** 2)


def muscle_min_length_mm(radii_mm: np.ndarray, diameter_mm: float = DIAMETER_MM, delta_m: float = 0.65,
                         segment_length_mm: float = SEGMENT_LENGTH_MM) -> np.ndarray:
    """Length a fully activated muscle element pulls its segment side towards (mm).

    L_min = (1 − δ_M (R_i + R_{i+1})/D) · L0_P with δ_M = 0.65: thinner segments (near the tips)
    contract less, so the same activation gives roughly the same bending angle along the body.
    """
    l0 = lateral_rest_length_mm(radii_mm, segment_length_mm)
    return (1.0 - delta_m * (radii_mm[:-1] + radii_mm[1:]) / diameter_mm) * l0


class BodyConstants:
    """The BBC mechanical constants converted to body units (plain floats, documented above).

    Attributes (body units):
        k_lateral: passive lateral stiffness k_PE (µN/mm).
        d_lateral: passive lateral damping D_PE (µN·s/mm).
        k_muscle: active muscle stiffness at activation 1, k_AE (µN/mm).
        d_muscle: active muscle damping at activation 1, D_AE (µN·s/mm).
        k_diagonal, d_diagonal: diagonal element stiffness and damping.
        delta_m: rest-length scaling of the muscle (dimensionless).
        stretch_stiffening_per_mm3: coefficient of the quartic stretch term, (2 ΔL)^4 with ΔL in m,
            expressed for ΔL in mm (16e-9 mm⁻³).
        muscle_time_constant_s: low-pass time constant of the muscles (s).
    """

    def __init__(self, n_segments: int = N_SEGMENTS):
        k_pe_si = (n_segments / 24.0) * 10.0e-3  # kg/s² (BBC k_PE)
        self.k_lateral = k_pe_si * STIFFNESS_N_PER_M_TO_UN_PER_MM
        self.d_lateral = 0.025 * k_pe_si * DRAG_KG_PER_S_TO_UN_S_PER_MM
        self.k_muscle = 20.0 * self.k_lateral
        self.d_muscle = 5.0 * 20.0 * self.d_lateral
        self.k_diagonal = 350.0 * self.k_lateral
        self.d_diagonal = 0.01 * 350.0 * k_pe_si * DRAG_KG_PER_S_TO_UN_S_PER_MM
        self.delta_m = 0.65
        # (2 ΔL_m)^4 m  with ΔL_m = 1e-3 ΔL_mm  ->  16e-12 ΔL_mm^4 m = 16e-9 ΔL_mm^4 mm
        self.stretch_stiffening_per_mm3 = 16e-9
        self.muscle_time_constant_s = 0.1

    def as_dict(self) -> dict[str, float]:
        return dict(vars(self))


BBC_CONSTANTS = BodyConstants()

#: 4π: the BBC code's rotational drag (dφ/dt = (F_odd/C_par)/(2π R)); the paper and CE_locomotion
#: use 1 (dφ/dt = 2 F_odd/(R C_par)). See docs/body.md (CEL NOTE 3).
ROTATIONAL_DRAG_FACTOR_BBC_CODE = 4.0 * math.pi
ROTATIONAL_DRAG_FACTOR_PAPER = 1.0
