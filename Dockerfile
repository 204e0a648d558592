# The operator image: the ansible-operator runtime, Ansible with kubernetes.core, this
# collection (vm_example.vmdiskimage: the modules), the vmdiskimage package they wrap,
# the roles and watches.yaml. Build it with `make operator-image`, which first puts the
# ansible-operator binary and the pinned collections into build/ (no registry, no Galaxy).
ARG BASE_IMAGE=localhost/vmdiskimage-base:latest
FROM ${BASE_IMAGE}

ENV HOME=/opt/ansible \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ANSIBLE_ROLES_PATH=/opt/ansible/roles \
    ANSIBLE_COLLECTIONS_PATH=/opt/ansible/collections \
    ANSIBLE_LOCAL_TEMP=/opt/ansible/.ansible/tmp

# The Python side of the ansible-operator runtime (what its upstream base image pins:
# ansible-runner with the HTTP event plugin that reports to the operator), then the
# vmdiskimage package.
COPY hack/operator-requirements.txt /tmp/operator-requirements.txt
RUN python3 -m venv /opt/venv \
 && pip install --quiet -r /tmp/operator-requirements.txt
COPY pyproject.toml README.md /tmp/vmdiskimage/
COPY vmdiskimage/ /tmp/vmdiskimage/vmdiskimage/
RUN pip install --quiet /tmp/vmdiskimage && rm -rf /tmp/vmdiskimage /tmp/operator-requirements.txt

COPY build/collections/ /opt/ansible/collections/
COPY galaxy.yml /opt/ansible/collections/ansible_collections/vm_example/vmdiskimage/
COPY meta/ /opt/ansible/collections/ansible_collections/vm_example/vmdiskimage/meta/
COPY plugins/ /opt/ansible/collections/ansible_collections/vm_example/vmdiskimage/plugins/
COPY watches.yaml /opt/ansible/watches.yaml
COPY roles/ /opt/ansible/roles/
COPY playbooks/ /opt/ansible/playbooks/
COPY build/ansible-operator /usr/local/bin/ansible-operator

# The modules run with the venv's Python (it holds the vmdiskimage package). Naming it
# spares every reconcile an interpreter discovery.
RUN echo "localhost ansible_connection=local ansible_python_interpreter=/opt/venv/bin/python3" > /etc/ansible-hosts \
 && echo "ansible:x:1001:0:ansible operator:/opt/ansible:/usr/sbin/nologin" >> /etc/passwd \
 && mkdir -p /opt/ansible/.ansible/tmp \
 && chown -R 1001:0 /opt/ansible \
 && chmod -R ug+rwX /opt/ansible

ENV ANSIBLE_INVENTORY=/etc/ansible-hosts
WORKDIR /opt/ansible
USER 1001
ENTRYPOINT ["/usr/local/bin/ansible-operator", "run", "--watches-file=./watches.yaml"]
