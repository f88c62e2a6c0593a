"""Circuit maps and lap figures on the real Monza session: what is drawn is the data, and big sessions stay light."""
import math
import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from f1twin.charts import (BEST_COLOUR, lap_comparison_figure, lap_time_evolution, rpm_distribution,
                           sector_comparison_chart, speed_histogram)
from f1twin.circuit import (MAP_CHANNELS, SVG_MAX_POINTS, CircuitError, Orientation, add_car_marker, channel_values,
                            circuit_map, decimate, delta_map, fit_orientation, held_gear, orientation_of, scatter_type,
                            track_marks)
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

def test_map_is_svg_with_one_mark_per_boundary(session):
    fig = circuit_map(session)
    assert isinstance(fig, go.Figure)
    assert all(type(t) is go.Scatter for t in fig.data), 'a few thousand points: SVG, no WebGL context to lose'
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
    want = {'throttle_brake': one['throttle'] - one['brake'],
            'gear': pd.Series(held_gear(one['gear'].to_numpy(), one['session_time_s']))}.get(channel, one.get(channel))
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
    held = held_gear(laps['gear'].to_numpy(), laps['session_time_s'])
    gears = list(range(held.min(), held.max() + 1))
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


def test_decimation_is_even_along_the_path_and_at_most_a_sample_a_metre(session):
    from f1twin.fakeac import resample_session
    fast = split_laps(resample_session(session, 333))
    one = fast[fast.lap == 2]
    kept = decimate(one)
    step = np.hypot(np.diff(kept['car_x']), np.diff(kept['car_z']))
    assert len(one) > 25_000 and len(kept) <= SVG_MAX_POINTS
    sample_step = np.hypot(np.diff(one['car_x']), np.diff(one['car_z']))
    assert 0.97 < np.median(step) < 1.03, 'a sample a metre'
    assert step.max() < 1 + sample_step.max() + 1e-3, 'no metre left without one'
    assert abs(len(kept) - sample_step.sum()) < 0.02 * sample_step.sum(), 'and not more'
    by_time = one.iloc[::len(one) // len(kept)]  # every N-th sample: sparse on the straights, dense in the chicanes
    t_step = np.hypot(np.diff(by_time['car_x']), np.diff(by_time['car_z']))
    assert np.percentile(t_step, 95) > 3 * np.percentile(t_step, 5)


def test_an_hour_at_333_hz_makes_an_svg_map_and_webgl_only_when_asked_for_more(session):
    big = long_session(session)
    assert len(big) == 1_200_000
    fig = circuit_map(big, 'speed_kmh')
    tr = colour_trace(fig)
    assert type(tr) is go.Scatter and SVG_MAX_POINTS - 100 < len(tr.x) <= SVG_MAX_POINTS
    assert [sh.name for sh in fig.layout.shapes] == ['S/F', 'S2', 'S3']
    split = split_laps(big)
    kept = decimate(split, 200_000)
    assert len(kept) <= 200_000 and set(boundary_index(split)) <= set(kept.index), 'the boundaries survive'
    gl = circuit_map(big, 'speed_kmh', max_points=50_000)
    assert all(type(t) is go.Scattergl for t in gl.data) and SVG_MAX_POINTS < len(colour_trace(gl).x) <= 50_000
    assert type(circuit_map(big, 'speed_kmh', max_points=SVG_MAX_POINTS).data[1]) is go.Scatter


def test_scatter_type_is_svg_up_to_the_limit():
    assert scatter_type(1) is go.Scatter and scatter_type(SVG_MAX_POINTS) is go.Scatter
    assert scatter_type(SVG_MAX_POINTS + 1) is go.Scattergl


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
        ['Speed (km/h)', 'Throttle (%)', 'Brake (%)', 'Gear', 'Gap (s)']
    for t in fig.data:
        np.testing.assert_allclose(t.x, cmp.index.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(fig.data[0].y, cmp['speed_kmh_ref'], rtol=1e-6)
    np.testing.assert_allclose(fig.data[1].y, cmp['speed_kmh_cmp'], rtol=1e-6)
    np.testing.assert_allclose(fig.data[-1].y, cmp['delta_s'], atol=1e-5)
    assert '+1.353 s' in fig.layout.title.text


SESSIONS = {'telemetry_2025-09-12_19-00-17.csv': [1, 2, 3, 4], 'telemetry_2025-09-13_16-18-26.csv': [1, 2]}


def neutral_between_gears(g) -> np.ndarray:
    """Positions where the trace shows 0 with a gear somewhere before and after it."""
    g = np.asarray(g)
    engaged = np.flatnonzero(g != 0)
    i = np.flatnonzero(g == 0)
    return i[(i > engaged.min()) & (i < engaged.max())] if len(engaged) else i[:0]


@pytest.mark.parametrize('name,timed', SESSIONS.items())
def test_lap_comparison_gear_never_drops_to_neutral_at_a_shift(name, timed):
    from pathlib import Path
    s = load_session(Path(sample_session_path()).parent / name)
    seen_raw = 0
    for ref in timed:
        for other in timed:
            if other == ref: continue
            cmp = compare_laps((s, ref), (s, other))
            fig = lap_comparison_figure(cmp)
            ref_gear, cmp_gear = fig.data[6], fig.data[7]
            assert fig.layout.yaxis4.title.text == 'Gear' and ref_gear.yaxis == cmp_gear.yaxis == 'y4'
            seen_raw += len(neutral_between_gears(cmp['gear_ref'])) + len(neutral_between_gears(cmp['gear_cmp']))
            for tr, w in ((ref_gear, 'ref'), (cmp_gear, 'cmp')):
                assert not len(neutral_between_gears(tr.y)), f'lap {ref} vs {other}: neutral shown at a shift'
                raw = cmp[f'gear_{w}'].to_numpy()
                assert np.array_equal(np.asarray(tr.y)[raw != 0], raw[raw != 0]), 'a gear engaged is shown as is'
    assert seen_raw > 10, 'AC recorded neutral at the shifts (what the figure must not show)'


def test_held_gear_holds_only_short_neutrals_between_two_gears(laps):
    t = np.arange(14) * 0.1
    g = np.array([0, 2, 0, 3, 0, 0, 4, 0, 0, 0, 0, 0, 0, 5])
    assert held_gear(g, t).tolist() == [0, 2, 2, 3, 3, 3, 4, 0, 0, 0, 0, 0, 0, 5]
    assert held_gear(g, t, max_gap_s=0.1).tolist() == g.tolist(), 'a gap longer than max_gap_s stays neutral'
    assert held_gear(np.array([-1, 0, 1]), t[:3]).tolist() == [-1, -1, 1], 'reverse is a gear'
    one = laps[laps.lap == 3]
    raw = one['gear'].to_numpy()
    held = held_gear(raw, one['session_time_s'])
    assert (raw == 0).sum() >= 5 and (held != 0).all()
    with pytest.raises(CircuitError, match='one length'):
        held_gear(raw, one['session_time_s'].iloc[1:])


def all_figures(session):
    lt = lap_table(session)
    return {'map': circuit_map(session), 'map lap 2': circuit_map(session, 'gear', lap=2),
            'comparison': lap_comparison_figure(compare_laps((session, 2), (session, 3))),
            'sectors': sector_comparison_chart(sector_table(session)), 'laps': lap_time_evolution(lt),
            'rpm': rpm_distribution(session), 'speed': speed_histogram(session)}


def test_figures_of_a_real_session_are_svg(session):
    for what, fig in all_figures(session).items():
        assert not [t for t in fig.data if 'gl' in t.type], f'{what}: WebGL for a few thousand points'


RAW_NAME = re.compile(r'^[a-z0-9]+(_[a-z0-9]+)+$|_(ms|kmh|pct|s)\b')


def test_axis_and_colour_bar_titles_are_words_with_units(session):
    for what, fig in all_figures(session).items():
        lay = fig.layout.to_plotly_json()
        titles = [v['title']['text'] for k, v in lay.items() if k.startswith(('xaxis', 'yaxis')) and 'title' in v]
        titles += [t.marker.colorbar.title.text for t in fig.data if getattr(t, 'marker', None) is not None
                   and 'colorbar' in t.marker and t.marker.colorbar.title.text]
        assert titles or what.startswith('map'), what
        for text in titles:
            assert not RAW_NAME.search(text) and text[0].isupper(), f'{what}: axis title {text!r}'
    assert all_figures(session)['speed'].layout.xaxis.title.text == 'Speed (km/h)'


def test_metadata_in_titles_is_escaped(session):
    s = session.copy()
    s.attrs = {'f1twin': {**session.attrs['f1twin'], 'track': '<script>x()</script>', 'session_id': '<b>&'}}
    for fig in (circuit_map(s, lap=2), rpm_distribution(s), speed_histogram(s)):
        assert fig.layout.title.text.startswith('&lt;script&gt;x()&lt;/script&gt; &lt;b&gt;&amp; · ')


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


def test_delta_map_is_the_gaps_slope_on_the_reference_line(session):
    c = compare_laps((session, 2), (session, 3))
    fig = delta_map(c, marks=track_marks(session))
    rate = np.asarray(fig.data[0].marker.color, dtype=float)
    d = c.index.to_numpy()
    # the slope integrated along the lap gives back the gap at the line
    assert np.nansum(rate * np.gradient(d) / 100) / 1000 == pytest.approx(c['delta_s'].iloc[-1], abs=0.05)
    assert 1000 < d[np.nanargmax(rate)] < 1500
    assert isinstance(fig.data[0], go.Scatter) and [s.name for s in fig.layout.shapes] == ['S/F', 'S2', 'S3']
    same = delta_map(compare_laps((session, 2), (session, 2)))
    assert np.nanmax(np.abs(np.asarray(same.data[0].marker.color, dtype=float))) == 0
    with pytest.raises(CircuitError, match='compare_laps'):
        delta_map(session)
    for w in (0, -50, float('nan'), float('inf'), '50', True):
        with pytest.raises(CircuitError, match=r'window_m .*: expected the metres the slope is measured over'):
            delta_map(c, window_m=w)
    assert len(delta_map(c, window_m=np.float32(20)).data[0].x) == len(c)


def test_moved_charts_still_import_from_circuit():
    import f1twin.circuit as circuit
    with pytest.warns(DeprecationWarning, match='moved to f1twin.charts'):
        assert circuit.rpm_distribution is rpm_distribution
