#!/usr/bin/env python
# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bench section "fleet" (BENCH_ONLY=fleet bash bench/run): the collection across the lab's hypervisors, over SSH.

  1. the wall time of playbook mount_models for 1, 2 and 3 hypervisors (one model per VM, forks 3), each run from
     nothing mounted, the sizes alternating;
  2. the no-op of one VM with 8 declared models already in place (the role model_mounts, one run of
     vm_model_mounts) against 8 ansible.builtin.stat tasks on the same hypervisor, alternating: the tasks' time
     (first task start to last task end, from the bench's callback) and the playbooks' wall;
  3. the inventory plugin model_mounts over qemu+ssh://hvI/system for 1 and 3 hypervisors;
  4. playbook migrate_vm moving hv1's guest to hv2 and back with 0, 1 and 4 models mounted (the sizes alternating):
     the play's wall, the live migration (virsh) and the time the models are out of the guest (from the start of
     the detach on the source to the end of the check in the guest on the destination, as the play measures it).
It brings the hypervisors up (tests/lab/lab up --hypervisors 3), uses tests/fleet/run.py's Fleet, and leaves them
up with nothing mounted. Figures go to $BENCH_DIR/fleet.json.
"""

import json
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, 'tests', 'fleet'))
import run as fleet_run  # noqa: E402  pylint: disable=wrong-import-position
import migrate as fleet_migrate  # noqa: E402  pylint: disable=wrong-import-position

LAB = fleet_run.LAB
RUNS = int(os.environ.get('BENCH_RUNS', '5'))
MODELS = ['bench-f%d' % i for i in range(1, 9)]
STATS_PLAY = '''
- name: Eight stat tasks
  hosts: "{{ bench_host }}"
  gather_facts: false
  tasks:
''' + ''.join('''    - name: stat %d
      ansible.builtin.stat:
        path: /var/lib/aimodel
''' % i for i in range(1, 9))


def say(text=''):
    print(text, flush=True)


def med(values):
    return statistics.median(values) if values else float('nan')


def span(timing_file):
    """First task start to last task end, from the bench_timing callback's lines."""
    with open(timing_file, encoding='utf-8') as handle:
        tasks = [json.loads(line) for line in handle if line.strip()]
    return max(t['end'] or t['start'] for t in tasks) - min(t['start'] for t in tasks), len(tasks)


class Bench:
    def __init__(self, work):
        self.work = work
        self.fleet = fleet_run.Fleet(3, work)
        self.model = self.fleet.lab['lab_model']
        self.n = 0

    def timed(self, runner, *args, **kw):
        """(wall, task span, task count, output) of one playbook run with the bench's timing callback."""
        self.n += 1
        timing = os.path.join(self.work, 'timing-%d.jsonl' % self.n)
        env = {'ANSIBLE_CALLBACK_PLUGINS': os.path.join(HERE, 'callback_plugins'), 'ANSIBLE_CALLBACKS_ENABLED': 'bench_timing',
               'BENCH_TIMING_FILE': timing}
        start = time.monotonic()
        _rc, out = runner(*args, extra_env=env, **kw)
        wall = time.monotonic() - start
        tasks_s, count = span(timing)
        return wall, tasks_s, count, out

    def unmount_all(self):
        self.fleet.playbook('unmount_models.yml', '-e', 'aimodel_unmount_all=true')

    def eight_vars(self):
        path = os.path.join(self.work, 'eight.json')
        with open(path, 'w', encoding='utf-8') as handle:
            json.dump({'model_mounts_catalog': {m: {'volume': self.fleet.lab['lab_volume_name'],
                                                    'source_path': self.fleet.lab['lab_model_source'],
                                                    'mount_path': '/var/lib/models/%s' % m} for m in MODELS},
                       'model_mounts_vms': "{{ {lab_vm: %s} }}" % json.dumps(MODELS)}, handle)
        return path


def main():
    started = time.monotonic()
    fleet_run.subprocess.run(['bash', fleet_run.LAB_SCRIPT, 'up', '--hypervisors', '3'], check=True,
                             stdout=fleet_run.subprocess.DEVNULL)
    work = tempfile.mkdtemp(prefix='aimodel-bench-fleet-')
    b = Bench(work)
    hosts = b.fleet.hosts
    results = {'runs': RUNS, 'loadavg_start': os.getloadavg()}
    b.unmount_all()

    say('== fleet 1. mount_models on 1, 2, 3 hypervisors (one model per VM, forks 3, %d runs, alternating) ==' % RUNS)
    walls = {k: [] for k in (1, 2, 3)}
    for run in range(RUNS):
        for k in ((1, 2, 3) if run % 2 == 0 else (3, 2, 1)):
            wall, _tasks, _count, _out = b.timed(b.fleet.playbook, 'mount_models.yml', '--limit', ','.join(hosts[:k]), '-f', '3')
            walls[k].append(wall)
            b.unmount_all()
    for k in (1, 2, 3):
        say('%d hypervisor%s: median %.2f s (%s)'
            % (k, 's' if k > 1 else ' ', med(walls[k]), ', '.join('%.2f' % w for w in walls[k])))
    say('3 hypervisors / 1: %.2f' % (med(walls[3]) / med(walls[1])))
    results['mount_models_wall_s'] = {str(k): walls[k] for k in walls}

    say()
    say('== fleet 2. no-op of one VM with 8 models in place: the role (one vm_model_mounts run) vs 8 '
        'ansible.builtin.stat, on hv1 over SSH (%d runs, alternating) ==' % RUNS)
    eight = b.eight_vars()
    b.fleet.playbook('mount_models.yml', '--limit', 'hv1', '-e', '@' + eight)
    stats_play = os.path.join(work, 'stats.yml')
    with open(stats_play, 'w', encoding='utf-8') as handle:
        handle.write(STATS_PLAY)
    role, stat = [], []
    for _run in range(RUNS):
        role.append(b.timed(b.fleet.playbook, 'mount_models.yml', '--limit', 'hv1', '-e', '@' + eight))
        check_noop(role[-1][3])
        stat.append(b.timed(b.fleet.ansible, ['ansible-playbook', stats_play, '-e', 'bench_host=hv1']))
    role_t, stat_t = med([r[1] for r in role]), med([s[1] for s in stat])
    role_w, stat_w = med([r[0] for r in role]), med([s[0] for s in stat])
    say('role no-op:  tasks %.2f s (%d tasks), playbook wall %.2f s' % (role_t, role[0][2], role_w))
    say('8 x stat:    tasks %.2f s (%d tasks), playbook wall %.2f s' % (stat_t, stat[0][2], stat_w))
    say('role / stat: tasks %.2f (goal <= 0.5), wall %.2f' % (role_t / stat_t, role_w / stat_w))
    results['noop_8'] = {'role_tasks_s': [r[1] for r in role], 'role_wall_s': [r[0] for r in role],
                         'stat_tasks_s': [s[1] for s in stat], 'stat_wall_s': [s[0] for s in stat],
                         'ratio_tasks': role_t / stat_t, 'ratio_wall': role_w / stat_w}
    b.unmount_all()

    say()
    say('== fleet 3. the inventory plugin over qemu+ssh, 1 and 3 hypervisors (%d runs, alternating) ==' % RUNS)
    one = os.path.join(work, 'one.aimodel.yml')
    with open(b.fleet.env['LAB_FLEET_PLUGIN_SOURCE'], encoding='utf-8') as handle:
        text = handle.read()
    with open(one, 'w', encoding='utf-8') as handle:
        handle.write(text.split('  - name: hv2')[0])
    b.fleet.playbook('mount_models.yml')
    plugin = {1: [], 3: []}
    for run in range(RUNS):
        for k, source in ((1, one), (3, b.fleet.env['LAB_FLEET_PLUGIN_SOURCE'])) if run % 2 == 0 else \
                ((3, b.fleet.env['LAB_FLEET_PLUGIN_SOURCE']), (1, one)):
            start = time.monotonic()
            _rc, out = b.fleet.ansible(['ansible-inventory', '--list'], inventory=source)
            plugin[k].append(time.monotonic() - start)
            found = fleet_run.plain(json.loads(out[out.index('{'):]))['_meta']['hostvars']
            assert len(found) == k, 'the plugin found %s' % sorted(found)
    for k in (1, 3):
        say('%d hypervisor%s: median %.2f s (%s)'
            % (k, 's' if k > 1 else ' ', med(plugin[k]), ', '.join('%.2f' % w for w in plugin[k])))
    say('3 hypervisors / 1: %.2f' % (med(plugin[3]) / med(plugin[1])))
    results['plugin_s'] = {str(k): plugin[k] for k in plugin}
    b.unmount_all()

    say()
    say('== fleet 4. migrate_vm hv1 -> hv2 -> hv1 with 0, 1 and 4 models (%d runs each way, alternating) ==' % RUNS)
    migs = dict((n, fleet_migrate.Migration(b.fleet, fleet_migrate.models(n))) for n in (0, 1, 4))
    figures = dict((n, {'wall_s': [], 'migration_s': [], 'unavailable_s': []}) for n in migs)
    for run in range(RUNS):
        for n in ((0, 1, 4) if run % 2 == 0 else (4, 1, 0)):
            mig = migs[n]
            mig.mount('hv1')
            for src, dst in (('hv1', 'hv2'), ('hv2', 'hv1')):
                _rc, _out, took, fig = mig.migrate(src, dst)
                assert fig and fig['models'] == n, 'the play did not report the move of %d models' % n
                figures[n]['wall_s'].append(took)
                figures[n]['migration_s'].append(fig['migration_s'])
                figures[n]['unavailable_s'].append(fig['unavailable_s'])
            mig.bytes_on('hv1')
            mig.unmount('hv1')
    for n in (0, 1, 4):
        f = figures[n]
        say('%d model%s: play wall median %.2f s, live migration %.2f s, models out of the guest %.2f s (%s)'
            % (n, ' ' if n == 1 else 's', med(f['wall_s']), med(f['migration_s']), med(f['unavailable_s']),
               ', '.join('%.2f' % u for u in f['unavailable_s'])))
    say('play wall 1 model / 0: %.2f, 4 models / 0: %.2f; models out 4 / 1: %.2f'
        % (med(figures[1]['wall_s']) / med(figures[0]['wall_s']), med(figures[4]['wall_s']) / med(figures[0]['wall_s']),
           med(figures[4]['unavailable_s']) / med(figures[1]['unavailable_s'])))
    results['migrate'] = {str(n): figures[n] for n in figures}

    results['total_s'] = time.monotonic() - started
    results['loadavg_end'] = os.getloadavg()
    out_dir = os.environ.get('BENCH_DIR', os.path.join(LAB, 'bench'))
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, 'fleet.json'), 'w', encoding='utf-8') as handle:
        json.dump(results, handle, indent=1, sort_keys=True)
    say()
    say('fleet bench done in %.0f s; figures in %s' % (results['total_s'], os.path.join(out_dir, 'fleet.json')))


def check_noop(out):
    recap = fleet_run.Fleet.recap(out)
    assert recap.get('hv1', {}).get('changed') == 0, 'the no-op run changed something: %s' % recap


if __name__ == '__main__':
    main()
