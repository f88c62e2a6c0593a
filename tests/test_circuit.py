"""Circuit maps and lap figures on the real Monza session: what is drawn is the data, and big sessions stay light."""
import math
import time

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from f1twin.circuit import (BEST_COLOUR, MAP_CHANNELS, CircuitError, Orientation, add_car_marker, channel_values,
                            circuit_map, decimate, fit_orientation, lap_comparison_figure, lap_time_evolution,
                            orientation_of, rpm_distribution, sector_comparison_chart, speed_histogram, track_marks)
from f1twin.io import load_session, sample_session_path
from f1twin.laps import compare_laps, lap_bounds, lap_table, sector_table, split_laps
from f1twin.schema import F1twinError


@pytest.fixture(scope='module')
def session():
    return load_session(sample_session_path())


@pytest.fixture(scope='module')
def laps(session):
    return split_laps(session)


def colour_trace(fig):
    """The trace whose markers carry the channel's colours."""
    (tr,) = [t for t in fig.data if t.mode == 'markers' and t.name != 'car']
    return tr


def boundary_index(df):
    """Index labels of the first sample of each new sector or lap."""
    change = (df['sector'].diff() != 0) | (df['lap'].diff() != 0)
    return df.index[change.to_numpy()][1:]


def long_session(s, rows=1_200_000, hz=333):
    """The complete laps of `s` at `hz`, repeated end to end with counters and clocks carried on, cut to `rows`."""
    from f1twin.fakeac import resample_session
    f = resample_session(s, hz)
    b = lap_bounds(f)
    full = b[~b['partial'] & b['lap_time_ms'].notna()]
    one = f.iloc[full['first'].min(): full['last'].max() + 1].reset_index(drop=True)
    span_t = one['session_time_s'].iloc[-1] - one['session_time_s'].iloc[0] + 1 / hz
    span_d = one['distance_total'].iloc[-1] - one['distance_total'].iloc[0] + one['distance_total'].diff().median()
    parts = []
    for k in range(math.ceil(rows / len(one))):
        p = one.copy()
        p['completed_laps'] += k * len(full)
        p['session_time_s'] += k * span_t
        p['timestamp'] += k * span_t
        p['distance_total'] += k * span_d
        parts.append(p)
    big = pd.concat(parts, ignore_index=True).iloc[:rows]
    big['packet_id'] = np.arange(len(big))
    big.attrs = f.attrs
    return big


# --- the map -------------------------------------------------------------------------------------------------

def test_map_is_webgl_with_one_mark_per_boundary(session):
    fig = circuit_map(session)
    assert isinstance(fig, go.Figure)
    assert all(isinstance(t, go.Scattergl) for t in fig.data)
    assert len(colour_trace(fig).x) == len(session)
    assert [sh.name for sh in fig.layout.shapes] == ['S/F', 'S2', 'S3']
    assert [a.text for a in fig.layout.annotations] == ['<b>S/F</b>', '<b>S2</b>', '<b>S3</b>']
    assert fig.layout.yaxis.scaleanchor == 'x' and fig.layout.yaxis.scaleratio == 1


def test_marks_sit_where_the_laps_and_sectors_change(session, laps):
    marks = track_marks(session)
    assert marks.index.tolist() == ['S/F', 'S2', 'S3'] and marks['crossings'].tolist() == [5, 4, 4]
    for name, sector in (('S2', 1), ('S3', 2)):
        first = laps.index[(laps['sector'] == sector) & (laps['sector'].shift() == sector - 1)]
        near = np.hypot(laps.loc[first, 'car_x'] - marks.loc[name, 'x'], laps.loc[first, 'car_z'] - marks.loc[name, 'z'])
        assert near.max() < 15, f'{name} mark {near.max():.1f} m from a crossing'
    assert np.allclose(np.hypot(marks['dx'], marks['dz']), 1)
    # the marks are drawn across the track: perpendicular to the direction of travel
    fig = circuit_map(session, lap=2)
    o = orientation_of(fig)
    for sh, (_, m) in zip(fig.layout.shapes, marks.iterrows()):
        u, v = o.apply(m['x'], m['z'])
        u2, v2 = o.apply(m['x'] + m['dx'], m['z'] + m['dz'])
        across = np.array([sh.x1 - sh.x0, sh.y1 - sh.y0])
        assert abs(np.dot(across / np.linalg.norm(across), [u2 - u, v2 - v])) < 1e-6


def test_orientation_lays_the_long_axis_horizontal(session):
    tr = colour_trace(circuit_map(session))
    assert np.ptp(tr.x) > 1.5 * np.ptp(tr.y)
    # rotated from the raw coordinates, in which Monza's long axis is not horizontal
    assert np.ptp(session['car_x']) < np.ptp(session['car_z'])


def test_orientation_is_a_turn_of_the_top_view_and_round_trips(laps):
    one = laps[laps.lap == 2]
    x, z = one['car_x'].to_numpy(float), one['car_z'].to_numpy(float)
    o = fit_orientation(x, z)
    mx, my = o.apply(x, z)
    assert np.allclose(np.hypot(mx[1:] - mx[:-1], my[1:] - my[:-1]), np.hypot(np.diff(x), np.diff(z)))
    area = 0.5 * np.sum(mx * np.roll(my, -1) - np.roll(mx, -1) * my)
    assert area < 0, 'Monza runs clockwise on the map'
    bx, bz = o.invert(mx, my)
    assert np.allclose(bx, x, atol=1e-6) and np.allclose(bz, z, atol=1e-6)
    assert isinstance(o.apply(1.0, 2.0)[0], float)
    assert fit_orientation(x, z) == o, 'the same positions give the same orientation'


@pytest.mark.parametrize('channel', list(MAP_CHANNELS))
def test_colours_are_the_channel_values_of_the_plotted_points(laps, channel):
    fig = circuit_map(laps, channel, lap=3)
    one = laps[laps.lap == 3]
    tr = colour_trace(fig)
    want = (one['throttle'] - one['brake']) if channel == 'throttle_brake' else one[channel]
    np.testing.assert_allclose(np.asarray(tr.marker.color, float), want.to_numpy(float), rtol=1e-6)
    np.testing.assert_allclose(channel_values(one, channel), want.to_numpy(float), rtol=1e-6)
    o = orientation_of(fig)
    mx, my = o.apply(one['car_x'], one['car_z'])
    np.testing.assert_allclose(tr.x, mx, atol=1e-3)
    np.testing.assert_allclose(tr.y, my, atol=1e-3)
    m = tr.marker
    assert m.cmin < m.cmax and m.colorbar.title.text == MAP_CHANNELS[channel].label


def test_gear_map_has_one_colour_per_gear(laps):
    tr = colour_trace(circuit_map(laps, 'gear'))
    gears = list(range(laps.gear.min(), laps.gear.max() + 1))
    assert list(tr.marker.colorbar.tickvals) == gears
    assert list(tr.marker.colorbar.ticktext) == ['N' if g == 0 else str(g) for g in gears]
    assert tr.marker.cmin == gears[0] - 0.5 and tr.marker.cmax == gears[-1] + 0.5
    assert len({c for _, c in tr.marker.colorscale}) == len(gears)


def test_pedals_share_one_diverging_scale(laps):
    tr = colour_trace(circuit_map(laps, 'throttle_brake', lap=2))
    assert (tr.marker.cmin, tr.marker.cmax) == (-1, 1)
    c = np.asarray(tr.marker.color)
    assert c.min() < -0.5 and c.max() == 1.0  # braking below zero, full throttle at the top


def test_car_marker_moves_and_uses_the_maps_orientation(session, laps):
    fig = circuit_map(session, lap=2, car=(session.loc[1000, 'car_x'], session.loc[1000, 'car_z']))
    add_car_marker(fig, session.loc[1500, 'car_x'], session.loc[1500, 'car_z'])
    cars = [t for t in fig.data if t.name == 'car']
    assert len(cars) == 1 and fig.data[-1].name == 'car'
    one = laps[laps.lap == 2]
    k = list(one.index).index(1500)
    tr = colour_trace(fig)
    assert np.isclose(cars[0].x[0], tr.x[k], atol=1e-3) and np.isclose(cars[0].y[0], tr.y[k], atol=1e-3)


def test_a_given_orientation_is_used_as_is(session):
    o = Orientation(0.0, 0.0, 0.0)
    tr = colour_trace(circuit_map(session, orientation=o))
    np.testing.assert_allclose(tr.x, session['car_x'], rtol=1e-6)
    np.testing.assert_allclose(tr.y, -session['car_z'], rtol=1e-6)


# --- big sessions --------------------------------------------------------------------------------------------

def test_decimation_keeps_max_points_and_every_boundary(laps):
    for max_points in (300, 1000, 2500):
        d = decimate(laps, max_points)
        assert len(d) <= max_points
        b = boundary_index(laps)
        assert set(b) <= set(d.index) and set(b - 1) <= set(d.index)
        assert d.index.is_monotonic_increasing
    assert decimate(laps, len(laps)) is laps
    with pytest.raises(CircuitError, match='max_points=10'):
        decimate(laps, 10)


def test_an_hour_at_333_hz_builds_a_light_map(session):
    big = long_session(session)
    assert len(big) == 1_200_000
    t0 = time.perf_counter()
    fig = circuit_map(big, 'speed_kmh')
    built = time.perf_counter() - t0
    t0 = time.perf_counter()
    size = len(fig.to_json())
    serialised = time.perf_counter() - t0
    tr = colour_trace(fig)
    print(f'\n1.2M-row map: built in {built:.2f} s, {len(tr.x):,} points, JSON {size / 1e6:.1f} MB in {serialised:.2f} s')
    assert isinstance(tr, go.Scattergl) and len(tr.x) <= 200_000
    assert [sh.name for sh in fig.layout.shapes] == ['S/F', 'S2', 'S3']
    assert built < 60, 'generous: a figure of an hour at 333 Hz must not take minutes'
    # the boundaries survive the decimation of the big session
    split = split_laps(big)
    kept = decimate(split, 200_000)
    assert set(boundary_index(split)) <= set(kept.index)
    fig_small = circuit_map(big, 'speed_kmh', max_points=20_000)
    assert len(colour_trace(fig_small).x) <= 20_000


# --- the other figures ---------------------------------------------------------------------------------------

def test_rpm_distribution_has_one_box_per_gear_with_the_datas_quartiles(session):
    fig = rpm_distribution(session)
    assert all(isinstance(t, go.Box) for t in fig.data)
    assert [t.name for t in fig.data] == ['N' if g == 0 else str(g) for g in sorted(session.gear.unique())]
    for t in fig.data:
        g = 0 if t.name == 'N' else int(t.name)
        r = session.loc[session.gear == g, 'rpm']
        assert (t.q1[0], t.median[0], t.q3[0]) == (r.quantile(0.25), r.median(), r.quantile(0.75))
        assert (t.lowerfence[0], t.upperfence[0]) == (r.min(), r.max())
    one = rpm_distribution(session, lap=2)
    assert sum(1 for _ in one.data) <= len(fig.data)


def test_speed_histogram_is_the_share_of_time(session):
    fig = speed_histogram(session, bin_kmh=20)
    bar = fig.data[0]
    assert isinstance(bar, go.Bar) and np.isclose(sum(bar.y), 100)
    lo, hi = np.asarray(bar.customdata)[:, 0], np.asarray(bar.customdata)[:, 1]
    assert np.allclose(hi - lo, 20)
    v = session['speed_kmh'].to_numpy(float)
    k = len(bar.y) - 1
    assert np.isclose(bar.y[k], ((v >= lo[k]) & (v <= hi[k])).mean() * 100)
    with pytest.raises(CircuitError, match='bin_kmh'):
        speed_histogram(session, bin_kmh=0)


def test_lap_comparison_has_five_rows_on_one_distance_axis(session):
    cmp = compare_laps((session, 2), (session, 3))
    fig = lap_comparison_figure(cmp)
    assert {t.xaxis for t in fig.data} == {'x', 'x2', 'x3', 'x4', 'x5'}
    assert [t.yaxis for t in fig.data] == ['y'] * 2 + ['y2'] * 2 + ['y3'] * 2 + ['y4'] * 2 + ['y5']
    assert all(fig.layout[f'xaxis{k}'].matches == 'x5' for k in (1, 2, 3, 4))
    assert [fig.layout[f'yaxis{k}'].title.text for k in ('', 2, 3, 4, 5)] == \
        ['speed (km/h)', 'throttle %', 'brake %', 'gear', 'gap (s)']
    for t in fig.data:
        np.testing.assert_allclose(t.x, cmp.index.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(fig.data[0].y, cmp['speed_kmh_ref'], rtol=1e-6)
    np.testing.assert_allclose(fig.data[1].y, cmp['speed_kmh_cmp'], rtol=1e-6)
    np.testing.assert_allclose(fig.data[-1].y, cmp['delta_s'], atol=1e-5)
    assert '+1.353 s' in fig.layout.title.text


def test_sector_chart_highlights_the_personal_best_sectors(session):
    st = sector_table(session)
    fig = sector_comparison_chart(st)
    assert len(fig.data) == 3
    for t, k in zip(fig.data, (1, 2, 3)):
        np.testing.assert_allclose(t.y, st[f's{k}_ms'] / 1000)
        highlighted = [c == BEST_COLOUR for c in t.marker.color]
        assert highlighted == st[f's{k}_best'].tolist() and sum(highlighted) == 1
    assert [c == BEST_COLOUR for c in fig.data[0].marker.color] == [False, True, False, False]  # S1 best on lap 2


def test_lap_time_evolution_marks_best_and_untimed_laps(session):
    lt = lap_table(session)
    fig = lap_time_evolution(lt)
    assert list(fig.data[0].x) == [1, 2, 3, 4]
    np.testing.assert_allclose(fig.data[0].y, [81.817, 81.186, 82.539, 82.165])
    (best,) = [t for t in fig.data if t.name.startswith('best')]
    assert list(best.x) == [2] and best.marker.color == BEST_COLOUR
    bands = [sh for sh in fig.layout.shapes if sh.type == 'rect']
    assert [(sh.x0 + sh.x1) / 2 for sh in bands] == [0, 5]
    excluded = lap_time_evolution(lt, exclude=True)
    assert not [sh for sh in excluded.layout.shapes if sh.type == 'rect']


def test_lap_time_evolution_shows_timed_in_laps_apart(session):
    lt = lap_table(session).copy()
    lt.loc[4, 'kind'] = 'in'
    lt.loc[4, 'pit'] = True
    fig = lap_time_evolution(lt)
    assert list(fig.data[0].x) == [1, 2, 3]
    (other,) = [t for t in fig.data if t.name == 'out/in/pit laps']
    assert list(other.x) == [4] and list(other.customdata) == ['pit']
    assert 4 not in lap_time_evolution(lt, exclude=True).data[0].x


# --- bad input -----------------------------------------------------------------------------------------------

def test_unknown_channel_names_the_allowed_ones(session):
    with pytest.raises(CircuitError) as e:
        circuit_map(session, 'tyre_temp')
    assert isinstance(e.value, F1twinError)
    for ch in MAP_CHANNELS:
        assert ch in str(e.value)


def test_frame_without_position_is_refused(session):
    with pytest.raises(CircuitError, match='car_x and car_z') as e:
        circuit_map(session.drop(columns=['car_x', 'car_z']))
    assert isinstance(e.value, F1twinError)
    with pytest.raises(CircuitError, match='car_z'):
        track_marks(session.drop(columns=['car_z']))
    with pytest.raises(CircuitError, match='no position'):
        circuit_map(session.assign(car_x=np.nan, car_z=np.nan))


def test_other_bad_input_gets_clear_errors(session):
    with pytest.raises(CircuitError, match=r'no lap 9 .*laps: \[0, 1, 2, 3, 4, 5\]'):
        circuit_map(session, lap=9)
    with pytest.raises(CircuitError, match='compare_laps'):
        lap_comparison_figure(lap_table(session))
    with pytest.raises(CircuitError, match='s1_ms'):
        sector_comparison_chart(lap_table(session)[['kind']])
    with pytest.raises(CircuitError, match='lap_table'):
        lap_time_evolution(session)
    with pytest.raises(CircuitError, match='not drawn by circuit_map'):
        add_car_marker(go.Figure(), 0.0, 0.0)
    with pytest.raises(CircuitError, match='gear'):
        rpm_distribution(session.drop(columns=['gear']))
    only_pos = session[['car_x', 'car_z', 'speed_kmh']]
    assert len(colour_trace(circuit_map(only_pos)).x) == len(session)  # no lap columns: a map without marks
    with pytest.raises(CircuitError, match='lap information'):
        circuit_map(only_pos, lap=2)
