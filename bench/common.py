# Copyright (c) aimodel.kvm contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the bench's sections share: the figures (summary, fmt, ratio, say) and the Bench context: the lab's
variables, the libvirt connection, the guest commands (tests/lab/labkit.py), the floor done by hand, the module
run directly and through ansible-playbook, and the bench-only VMs. Nothing happens at import: bench.py's main()
builds one Bench and hands it to each section.

Two layouts of the modules can run: ``new``, the working tree (one shared virtiofs device per VM and access mode),
and ``old``, the modules of an earlier release extracted by bench/run (one device per model; only when
$BENCH_OLD_COLLECTIONS is set). modrun(), playbook() and unmount_all() take the layout; a model is always taken
away by the layout that mounted it.
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET

import libvirt  # pylint: disable=import-error

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'lab'))

import labkit  # noqa: E402  pylint: disable=wrong-import-position

BENCH_VMS = ['aimodel-bench3', 'aimodel-bench4']
MODELS = ['bench-m%d' % i for i in range(1, 9)]
# Model names of the layout and q35 sections (for the leftovers a failed run may leave).
FIRST, LATER = 'bench-first', 'bench-later'
Q35_MODELS = ['bench-q%02d' % i for i in range(1, 21)]
OTHER_MODELS = ['bench-one', 'bench-data', 'bench-redis', FIRST, LATER] + Q35_MODELS


# --- figures -------------------------------------------------------------------------------------------

def summary(values):
    values = [v for v in values if v is not None]
    return {'median': statistics.median(values), 'min': min(values), 'max': max(values), 'n': len(values),
            'values': values}


def fmt(s, unit='s', digits=3):
    if isinstance(s, list):
        s = summary(s)
    return '%.*f %s (%.*f–%.*f, n=%d)' % (digits, s['median'], unit, digits, s['min'], digits, s['max'], s['n'])


def ratio(a, b):
    return summary(a)['median'] / summary(b)['median']


def say(text=''):
    print(text, flush=True)


# --- pieces of the floor and of the healing -------------------------------------------------------------

def _started(pid):
    with open('/proc/%d/stat' % pid) as handle:
        return int(handle.read().rsplit(')', 1)[1].split()[19])


def fs_xml(source, tag):
    return ("<filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/>"
            "<source dir='%s'/><target dir='%s'/></filesystem>" % (source, tag))


def floor(attach, run, tag, path):
    """The floor's steps, timed: attach, mkdir -p, then the mount, retried every 0.02 s while the guest discovers
    the device (as the module does). No checks, no fstab, no record."""
    start = time.monotonic()
    attach()
    rc, _out, err = run(['mkdir', '-p', path])
    assert rc == 0, err
    for _try in range(500):
        rc, _out, err = run(['mount', '-t', 'virtiofs', '-o', 'ro', tag, path])
        if rc == 0:
            return time.monotonic() - start
        time.sleep(0.02)
    raise RuntimeError('floor mount of %s failed: %s' % (tag, err))


PLAY_MOUNT = '''
- hosts: localhost
  gather_facts: false
  connection: local
  tasks:
    - name: bench mounts
      aimodel.kvm.vm_model_mount:
        uri: "{{ bench_uri }}"
        vm: "{{ item.0 }}"
        model: "{{ item.1 }}"
        source_path: "{{ bench_source }}"
        volume: "{{ bench_volume }}"
        state: "{{ bench_state }}"
      loop: "{{ bench_vms | product(bench_models) | list }}"
'''

PLAY_STAT = '''
- hosts: localhost
  gather_facts: false
  connection: local
  tasks:
    - name: bench stats
      ansible.builtin.stat:
        path: "{{ bench_source_dir }}"
      loop: "{{ bench_vms | product(bench_models) | list }}"
'''


class Bench:  # pylint: disable=too-many-instance-attributes,too-many-public-methods
    """The bench's context: configuration from the environment and lab.env, the libvirt connection, the results."""

    def __init__(self):
        self.libvirt = labkit.libvirt()   # libvirt's own printing of errors off
        self.root = ROOT
        lab = os.environ.get('AIMODEL_LAB', '/var/tmp/aimodel-lab')
        self.dir = os.environ.get('BENCH_DIR', os.path.join(lab, 'bench'))
        self.coll = os.environ['BENCH_COLLECTIONS']          # a directory holding ansible_collections/aimodel/kvm
        self.runs = int(os.environ.get('BENCH_RUNS', '5'))
        self.scale_runs = int(os.environ.get('BENCH_SCALE_RUNS', '3'))
        self.py = sys.executable
        self.module = os.path.join(ROOT, 'plugins', 'modules', 'vm_model_mount.py')
        # layout -> (directory holding ansible_collections/aimodel/kvm, the module file in it)
        self.layouts = {'new': (self.coll, self.module)}
        old = os.environ.get('BENCH_OLD_COLLECTIONS')
        if old:
            self.layouts['old'] = (old, os.path.join(old, 'ansible_collections', 'aimodel', 'kvm', 'plugins', 'modules',
                                                     'vm_model_mount.py'))
        self.old_ref = os.environ.get('BENCH_OLD_REF', '')
        self.results = {}
        self.vars = labkit.lab_vars()
        self.uri = self.vars['lab_uri']
        self.vm = self.vars['lab_vm2']
        self.vm_q35 = self.vars.get('lab_vm_q35')
        self.vm_deb = self.vars.get('lab_vm_deb')
        self.source = self.vars['lab_model_source']
        self.volume = {'name': self.vars['lab_volume_name'], 'meta_url': self.vars['lab_meta_url'],
                       'mount_root': os.path.join(self.dir, 'volumes'), 'cache_dir': os.path.join(self.dir, 'jfscache')}
        self.juicefs = '/usr/local/bin/juicefs' if os.path.exists('/usr/local/bin/juicefs') else shutil.which('juicefs')
        self.host_point = os.path.join(self.volume['mount_root'], self.volume['name'], 'ro')
        self._conn = libvirt.open(self.uri)

    # --- libvirt and the guest agent, by hand (the raw floor and the measurements) -----------------------

    def conn(self):
        """The libvirt connection, opened again when libvirtd was restarted under it (the reliability suite does that)."""
        for _try in range(60):
            try:
                if self._conn.isAlive():
                    self._conn.getLibVersion()
                    return self._conn
            except libvirt.libvirtError:
                pass
            try:
                self._conn = libvirt.open(self.uri)
                return self._conn
            except libvirt.libvirtError:
                time.sleep(1)
        raise RuntimeError('libvirtd does not answer at %s' % self.uri)

    def dom(self, name=None):
        return self.conn().lookupByName(name or self.vm)

    def agent(self, name, execute, arguments=None, timeout=60):
        """One agent command on a domain looked up anew (the connection may have been opened again)."""
        return labkit.agent(self.dom(name), execute, arguments, timeout)

    def send(self, name):
        """send(execute, arguments) for labkit.exec_with and labkit.write_file, on the VM name."""
        return lambda execute, arguments: self.agent(name, execute, arguments)

    def gexec(self, name, argv, timeout=120):
        """(exit code, stdout, stderr) of argv in the guest, polled every 4 ms for the first 2 s, then every 0.1 s."""
        return labkit.exec_with(self.send(name), argv, timeout, delay=labkit.fine_then_coarse).text()

    def gwrite(self, name, path, text):
        labkit.write_file(self.send(name), path, text.encode())

    def wait_agent(self, name, timeout=180):
        labkit.wait_agent(self.uri, name, timeout, ping_timeout=5)
        return True

    def drop_caches(self, vms=None):
        subprocess.run(['sync'], check=True)
        with open('/proc/sys/vm/drop_caches', 'w') as handle:
            handle.write('3\n')
        for name in vms or (self.vm,):
            self.gwrite(name, '/proc/sys/vm/drop_caches', '3\n')

    def dead_backends(self, name):
        """Aliases of live virtiofs devices whose virtiofsd is gone (the reliability suite kills them)."""
        domain = self.dom(name)
        dead = []
        for alias in re.findall(r"<filesystem[^>]*>.*?<alias name='([^']+)'", domain.XMLDesc(0), re.S):
            pidfiles = [f for f in os.listdir('/run/libvirt/qemu') if f.startswith('%d-' % domain.ID()) and
                        f.endswith('-%s-fs.pid' % alias)]
            alive = False
            for pidfile in pidfiles:
                try:
                    with open(os.path.join('/run/libvirt/qemu', pidfile)) as handle:
                        alive = os.path.exists('/proc/%d' % int(handle.read().strip()))
                except (OSError, ValueError):
                    pass
            if not alive:
                dead.append(alias)
        return dead

    def cleanup_raw(self):
        """Remove what the hand-made (raw) parts of a failed section left on the VM."""
        paths = {'bench-raw': '/mnt/models/bench-raw', 'bench-plain': '/mnt/bench-plain'}
        for flag, xml in ((libvirt.VIR_DOMAIN_AFFECT_LIVE, self.dom().XMLDesc(0)),
                          (libvirt.VIR_DOMAIN_AFFECT_CONFIG, self.dom().XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))):
            for source, tag in re.findall(r"<filesystem.*?<source dir='([^']+)'/>.*?<target dir='([^']+)'/>", xml, re.S):
                if tag in paths:
                    if flag == libvirt.VIR_DOMAIN_AFFECT_LIVE:
                        self.gexec(self.vm, ['umount', paths[tag]])
                    self.dom().detachDeviceFlags(fs_xml(source, tag), flag)
            if flag == libvirt.VIR_DOMAIN_AFFECT_LIVE and 'blk.img' in xml:
                self.gexec(self.vm, ['umount', '/mnt/bench-blk'])
                img = os.path.join(self.dir, 'blk.img')
                self.dom().detachDeviceFlags("<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='%s'/>"
                                             "<target dev='vdb' bus='virtio'/><readonly/></disk>" % img, flag)

    def ensure_host_volume(self):
        """A VM whose persistent config holds devices on the bench volume starts only when that volume is mounted."""
        with open('/proc/self/mountinfo') as handle:
            mounted = any(self.host_point in line.split()[4] for line in handle)
        if not mounted:
            os.makedirs(self.host_point, exist_ok=True)
            subprocess.run([self.juicefs, 'mount', '-d', '--read-only', '--no-usage-report', '--cache-dir', self.volume['cache_dir'],
                            '--log', os.path.join(self.dir, 'juicefs.log'), self.volume['meta_url'], self.host_point],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def heal_after_libvirtd_restart(self, names):
        """libvirt < 9.2 forgets the shared memory backing of running VMs when libvirtd restarts (the
        reliability suite restarts it), and then refuses virtiofs hot-plug: restart such VMs (ours only)."""
        with open('/run/libvirt/qemu/driver.pid') as handle:
            daemon = _started(int(handle.read().split()[0]))
        self.ensure_host_volume()
        for name in names:
            if not self.dom(name).isActive():
                self.dom(name).create()
                continue
            try:
                with open('/run/libvirt/qemu/%s.pid' % name) as handle:
                    qemu = _started(int(handle.read().split()[0]))
            except OSError:
                continue
            dead = self.dead_backends(name)
            if qemu < daemon or dead:
                why = ('the virtiofsd of %s is gone' % ', '.join(dead)) if dead else 'it runs since before the last libvirtd restart'
                say('(restarting %s: %s)' % (name, why))
                self.dom(name).destroy()
                self.dom(name).create()
        for name in names:
            self.wait_agent(name)

    def live_has(self, name, tag):
        return "dir='%s'" % tag in self.dom(name).XMLDesc(0)

    def raw_mount(self, tag, path, source=None):
        """The floor in one process: attachDeviceFlags(LIVE|CONFIG) and the guest commands on one open domain handle."""
        domain = self.dom()
        device = fs_xml(source or os.path.join(self.host_point, self.source), tag)

        send = labkit.sender(domain, 60)
        return floor(lambda: domain.attachDeviceFlags(device, libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG),
                     lambda argv: labkit.exec_with(send, argv, 120, delay=labkit.fine_then_coarse).text(), tag, path)

    def virsh(self, *args):
        return subprocess.run(['virsh', '-q', '-c', self.uri] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, check=True).stdout

    def raw_mount_virsh(self, tag, path, source=None):
        """The floor as a user scripts it today: virsh attach-device --live --config with an XML file, and the guest
        commands through virsh qemu-agent-command (guest-exec, guest-exec-status); one virsh process per step."""
        xml_file = os.path.join(self.dir, 'virsh-%s.xml' % tag)
        with open(xml_file, 'w') as handle:
            handle.write(fs_xml(source or os.path.join(self.host_point, self.source), tag))

        def send(execute, arguments):
            return json.loads(self.virsh('qemu-agent-command', self.vm, json.dumps({'execute': execute, 'arguments': arguments})))['return']
        try:
            return floor(lambda: self.virsh('attach-device', self.vm, xml_file, '--live', '--config'),
                         lambda argv: labkit.exec_with(send, argv, 120, delay=labkit.fine_then_coarse).text(), tag, path)
        finally:
            os.unlink(xml_file)

    def raw_unmount(self, tag, path, source=None):
        self.gexec(self.vm, ['umount', path])
        self.dom().detachDeviceFlags(fs_xml(source or os.path.join(self.host_point, self.source), tag),
                                     libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        while self.live_has(self.vm, tag):
            time.sleep(0.05)

    def module_args(self, vm, model, state='mounted', **extra):
        args = {'uri': self.uri, 'vm': vm, 'model': model, 'state': state}
        if state == 'mounted':
            args.update(source_path=self.source, volume=self.volume)
        args.update(extra)
        return args

    def modrun(self, args, profile=True, layout='new'):
        """One direct run of the module of the layout (python, no ansible-playbook), profiled by bench/modrun.py
        (or only timed: profile=False)."""
        coll, module = self.layouts[layout]
        work = tempfile.mkdtemp(dir=self.dir)
        try:
            with open(os.path.join(work, 'args.json'), 'w') as handle:
                json.dump({'ANSIBLE_MODULE_ARGS': args}, handle)
            env = dict(os.environ, PYTHONPATH=coll)
            if not profile:
                env['BENCH_NOPROFILE'] = '1'
            start = time.monotonic()
            subprocess.run([self.py, os.path.join(self.root, 'bench', 'modrun.py'), module, os.path.join(work, 'args.json'),
                            os.path.join(work, 'out.json')], env=env, check=True)
            outer = time.monotonic() - start
            with open(os.path.join(work, 'out.json')) as handle:
                data = json.load(handle)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if data['result'].get('failed'):
            raise RuntimeError('module failed: %s' % data['result'].get('msg'))
        data['outer'] = outer
        return data

    def unmount_all(self, pairs, layout='new'):
        """state=absent directly through the module of the layout (not profiled: not timed), one thread per VM
        (the module locks per VM anyway)."""
        by_vm = {}
        for vm, model in pairs:
            by_vm.setdefault(vm, []).append(model)

        errors = []

        def work(vm, models):
            try:
                for model in models:
                    self.modrun(self.module_args(vm, model, 'absent'), profile=False, layout=layout)
            except Exception as exc:  # pylint: disable=broad-except
                errors.append(exc)
        threads = [threading.Thread(target=work, args=item) for item in by_vm.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    def playbook(self, text, vms, models, state='mounted', layout='new'):
        """Run a playbook; returns (wall of ansible-playbook, seconds of its last task from the callback, whether
        that task changed something)."""
        wall, tasks, proc = self.playbook_tasks(text, vms, models, state, layout)
        if proc.returncode != 0:
            raise RuntimeError('ansible-playbook failed:\n%s' % proc.stdout[-3000:])
        task = tasks[-1]
        return wall, task['end'] - task['start'], task['changed']

    def playbook_tasks(self, text, vms, models, state='mounted', layout='new'):
        """Run a playbook with the modules of the layout; returns (wall of ansible-playbook, the callback's tasks
        (start, end, changed, failed, items), the finished process). A failed task is the caller's to judge."""
        work = tempfile.mkdtemp(dir=self.dir)
        try:
            with open(os.path.join(work, 'play.yml'), 'w') as handle:
                handle.write(text)
            with open(os.path.join(work, 'vars.json'), 'w') as handle:
                json.dump({'bench_uri': self.uri, 'bench_vms': list(vms), 'bench_models': list(models), 'bench_state': state,
                           'bench_source': self.source, 'bench_volume': self.volume, 'ansible_python_interpreter': self.py,
                           'bench_source_dir': os.path.join(self.host_point, self.source)}, handle)
            timing = os.path.join(work, 'timing.jsonl')
            env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=self.layouts[layout][0],
                       ANSIBLE_CALLBACK_PLUGINS=os.path.join(self.root, 'bench', 'callback_plugins'),
                       ANSIBLE_CALLBACKS_ENABLED='bench_timing', BENCH_TIMING_FILE=timing, ANSIBLE_LOCALHOST_WARNING='false',
                       ANSIBLE_INVENTORY_UNPARSED_WARNING='false', ANSIBLE_NOCOLOR='1', ANSIBLE_RETRY_FILES_ENABLED='false')
            start = time.monotonic()
            proc = subprocess.run([os.path.join(os.path.dirname(self.py), 'ansible-playbook'), '-i', 'localhost,',
                                   os.path.join(work, 'play.yml'), '-e', '@' + os.path.join(work, 'vars.json')],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                                  check=False)
            wall = time.monotonic() - start
            tasks = []
            if os.path.exists(timing):
                with open(timing) as handle:
                    tasks = [json.loads(line) for line in handle]
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if not tasks:
            raise RuntimeError('ansible-playbook ran no task:\n%s' % proc.stdout[-3000:])
        return wall, tasks, proc

    def define_bench_vm(self, name):
        xml = self.dom(self.vm).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        root = ET.fromstring(xml)
        root.find('name').text = name
        root.find('uuid').text = str(uuid.uuid4())
        metadata = root.find('metadata')
        if metadata is not None:
            root.remove(metadata)
        devices = root.find('devices')
        for fs in devices.findall('filesystem'):
            devices.remove(fs)
        for disk in devices.findall('disk'):
            src = disk.find('source')
            if src is not None and src.get('file'):
                copy = os.path.join(self.dir, 'persist-%s.img' % name)
                shutil.copyfile(src.get('file'), copy)
                src.set('file', copy)
        for tag in ('serial', 'console'):
            for elem in devices.findall(tag):
                src = elem.find('source')
                if src is not None and src.get('path'):
                    src.set('path', os.path.join(self.dir, '%s-console.log' % name))
        for elem in devices.findall('channel'):
            src = elem.find('source')
            if src is not None and src.get('path'):
                elem.remove(src)
        for elem in devices.iter('mac'):
            elem.set('address', '52:54:00:%02x:%02x:%02x' % tuple(os.urandom(3)))
        new = self.conn().defineXML(ET.tostring(root).decode())
        new.create()

    def remove_bench_vm(self, name):
        try:
            domain = self.conn().lookupByName(name)
        except libvirt.libvirtError:
            return
        if domain.isActive():
            domain.destroy()
        domain.undefineFlags(getattr(libvirt, 'VIR_DOMAIN_UNDEFINE_NVRAM', 0))
        for path in (os.path.join(self.dir, 'persist-%s.img' % name), os.path.join(self.dir, '%s-console.log' % name)):
            if os.path.exists(path):
                os.unlink(path)

    def our_models(self, name):
        """bench-* records on a VM (from the module's metadata)."""
        xml = self.dom(name).XMLDesc(0) + self.dom(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        return [m for m in MODELS + OTHER_MODELS if re.search(r"model=['\"]%s['\"]" % m, xml)]

    def umount_volumes(self):
        """juicefs umount of every host mount under the bench's own mount root."""
        with open('/proc/self/mountinfo') as handle:
            lines = handle.readlines()
        for line in lines:
            point = line.split()[4]
            if point.startswith(self.volume['mount_root'] + '/'):
                subprocess.run([self.juicefs, 'umount', point], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               check=False)
