"""Deploy the synthesized templates to moto (a local AWS emulator on loopback) and read the resources back.

usage: moto_deploy.py ENDPOINT CDK_OUT CONFIG REPORT
Stacks are created in the cloud assembly's dependency order, each in its own region, after doing what
`cdk bootstrap` and cdk-assets would (the bootstrap version parameter, the file assets in the staging bucket).
Exits non-zero when a stack fails or a read-back check fails. REPORT gets, per stack, the resource types moto
created and those it could not take.
"""
import json
import os
import sys

import boto3
from moto.cloudformation.parsing import NULL_MODELS, get_model_map

endpoint, cdk_out, config_path, report_path = sys.argv[1:5]
cfg = json.load(open(config_path))
account = cfg["account"]
failures = []


def client(service, region):
    return boto3.client(service, region_name=region, endpoint_url=endpoint,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


manifest = json.load(open(os.path.join(cdk_out, "manifest.json")))
stacks = {name: a for name, a in manifest["artifacts"].items() if a["type"] == "aws:cloudformation:stack"}
order, seen = [], set()


def visit(name):
    if name in seen or name not in stacks:
        return
    seen.add(name)
    for dep in stacks[name].get("dependencies", []):
        visit(dep)
    order.append(name)


for name in stacks:
    visit(name)

regions = sorted({stacks[n]["environment"].split("/")[-1] for n in order})
for region in regions:
    # What `cdk bootstrap` leaves behind, as far as these templates read it.
    client("ssm", region).put_parameter(Name="/cdk-bootstrap/hnb659fds/version", Value="30", Type="String", Overwrite=True)
    bucket = f"cdk-hnb659fds-assets-{account}-{region}"
    s3 = client("s3", region)
    if region == "us-east-1":
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})

# cdk-assets: upload each file asset where the template expects it.
for name in order:
    assets = json.load(open(os.path.join(cdk_out, f"{name}.assets.json")))
    for asset in assets.get("files", {}).values():
        src = os.path.join(cdk_out, asset["source"]["path"])
        for dest in asset["destinations"].values():
            region = dest["region"]
            bucket = dest["bucketName"].replace("${AWS::AccountId}", account).replace("${AWS::Region}", region)
            if os.path.isdir(src):
                continue  # directory assets are zipped by cdk-assets; none of these stacks has one
            client("s3", region).upload_file(src, bucket, dest["objectKey"])

# moto skips resource types it does not know, but then fails on any Ref/GetAtt to them. Take them out, and put
# a placeholder where they were referenced; the ACM certificate becomes one requested from moto's ACM (as if it
# had been issued), since the load balancer listener must name an existing certificate.
SUPPORTED = set(get_model_map()) | set(NULL_MODELS)


def placeholder_for(logical_id, rtype, region):
    if rtype == "AWS::CertificateManager::Certificate":
        acm = client("acm", region)
        return acm.request_certificate(DomainName=f"api.{cfg['domain']}", ValidationMethod="DNS")["CertificateArn"]
    return f"moto-placeholder-{logical_id}"


def strip_unsupported(template, region):
    removed = {lid: r["Type"] for lid, r in template["Resources"].items()
               if r["Type"] not in SUPPORTED and not r["Type"].startswith("Custom::")}
    values = {lid: placeholder_for(lid, t, region) for lid, t in removed.items()}

    def walk(node):
        if isinstance(node, dict):
            if set(node) == {"Ref"} and node["Ref"] in values:
                return values[node["Ref"]]
            if set(node) == {"Fn::GetAtt"} and node["Fn::GetAtt"][0] in values:
                return f"{values[node['Fn::GetAtt'][0]]}-{node['Fn::GetAtt'][1]}"
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    kept = {}
    for lid, r in template["Resources"].items():
        if lid in removed:
            continue
        r = walk(r)
        deps = r.get("DependsOn")
        if deps:
            deps = [d for d in ([deps] if isinstance(deps, str) else deps) if d not in removed]
            r["DependsOn"] = deps if deps else r.pop("DependsOn")
            if not deps:
                r.pop("DependsOn", None)
        kept[lid] = r
    template["Resources"] = kept
    template["Outputs"] = walk(template.get("Outputs", {}))
    return sorted(set(removed.values()))


def lifecycle_rule(rule):
    api = {"ID": rule["Id"], "Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
    if "ExpirationInDays" in rule:
        api["Expiration"] = {"Days": rule["ExpirationInDays"]}
    if "NoncurrentVersionExpiration" in rule:
        api["NoncurrentVersionExpiration"] = {"NoncurrentDays": rule["NoncurrentVersionExpiration"]["NoncurrentDays"]}
    if "AbortIncompleteMultipartUpload" in rule:
        api["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
    return api


def rename_id(node):
    if isinstance(node, dict):
        return {("ID" if k == "Id" else k): rename_id(v) for k, v in node.items()}
    if isinstance(node, list):
        return [rename_id(v) for v in node]
    return node


def apply_bucket_properties(name, region, template):
    """moto's CloudFormation applies only a bucket's encryption and tags; put the rest through the S3 API, which
    checks each document's shape the way S3 does."""
    cf = client("cloudformation", region)
    s3 = client("s3", region)
    physical = {r["LogicalResourceId"]: r.get("PhysicalResourceId") for r in cf.describe_stack_resources(StackName=name)["StackResources"]}
    for lid, r in template["Resources"].items():
        if r["Type"] != "AWS::S3::Bucket":
            continue
        p, bucket = r.get("Properties", {}), physical[lid]
        if "VersioningConfiguration" in p:
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": p["VersioningConfiguration"]["Status"]})
        if "PublicAccessBlockConfiguration" in p:
            s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=p["PublicAccessBlockConfiguration"])
        if "LifecycleConfiguration" in p:
            s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={
                "Rules": [lifecycle_rule(x) for x in p["LifecycleConfiguration"]["Rules"]]})
        if "ReplicationConfiguration" in p:
            rc = p["ReplicationConfiguration"]
            role = rc["Role"]
            if isinstance(role, dict):  # Fn::GetAtt [Role, Arn]
                role = client("iam", region).get_role(RoleName=physical[role["Fn::GetAtt"][0]])["Role"]["Arn"]
            s3.put_bucket_replication(Bucket=bucket, ReplicationConfiguration={"Role": role, "Rules": rename_id(rc["Rules"])})


report = {}
for name in order:
    region = stacks[name]["environment"].split("/")[-1]
    cf = client("cloudformation", region)
    template_path = os.path.join(cdk_out, stacks[name]["properties"]["templateFile"])
    template = json.load(open(template_path))
    declared_types = sorted({r["Type"] for r in template["Resources"].values()})
    unsupported = strip_unsupported(template, region)
    body = json.dumps(template)
    try:
        cf.create_stack(StackName=name, TemplateBody=body, Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"])
        status = cf.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
    except Exception as e:  # noqa: BLE001 - the report records why moto refused the stack
        status = f"REFUSED: {e}"
    check(status == "CREATE_COMPLETE", f"{name} ({region}): {status}")
    if status == "CREATE_COMPLETE":
        try:
            apply_bucket_properties(name, region, json.load(open(template_path)))
        except Exception as e:  # noqa: BLE001
            check(False, f"{name}: S3 refused a bucket property: {e}")
    created = set()
    if status == "CREATE_COMPLETE":
        for r in cf.describe_stack_resources(StackName=name)["StackResources"]:
            if r.get("PhysicalResourceId"):
                created.add(r["ResourceType"])
    report[name] = {
        "region": region,
        "created": sorted(t for t in declared_types if t in created),
        "unknown_to_moto": unsupported,
        "not_created": sorted(t for t in declared_types if t not in created and t not in unsupported and t != "AWS::CDK::Metadata"),
    }

# Read back what moto did create.
primary = cfg["regions"]["primary"]
for region in [primary, *cfg["regions"]["secondary"]]:
    s3 = client("s3", region)
    bucket = f"akidb-models-{account}-{region}"
    try:
        versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status")
        pab = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        enc = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
        lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except Exception as e:  # noqa: BLE001
        check(False, f"model bucket {bucket} readable: {e}")
        continue
    check(versioning == "Enabled", f"{bucket}: versioning {versioning}")
    check(all(pab.values()) and len(pab) == 4, f"{bucket}: public access blocked {pab}")
    check(enc["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256", f"{bucket}: SSE-S3")
    days = [r.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays") for r in lifecycle]
    check(cfg["buckets"]["noncurrentVersionExpirationDays"] in days, f"{bucket}: non-current versions expire after {days}")
    if region == primary:
        try:
            rules = s3.get_bucket_replication(Bucket=bucket)["ReplicationConfiguration"]["Rules"]
            dests = sorted(r["Destination"]["Bucket"] for r in rules)
        except Exception as e:  # noqa: BLE001
            dests = [f"none: {e}"]
        want = sorted(f"arn:aws:s3:::akidb-models-{account}-{r}" for r in cfg["regions"]["secondary"])
        check(dests == want, f"{bucket}: replication rules to {dests}")

r53 = client("route53", "us-east-1")
checks = r53.list_health_checks()["HealthChecks"]
by_fqdn = {h["HealthCheckConfig"].get("FullyQualifiedDomainName"): h for h in checks}
for region in [primary, *cfg["regions"]["secondary"]]:
    h = by_fqdn.get(f"{region}.api.{cfg['domain']}")
    check(h is not None, f"health check for {region} exists")
    if h:
        c = h["HealthCheckConfig"]
        check((c["Type"], c["ResourcePath"], c["RequestInterval"], c["FailureThreshold"]) == ("HTTPS", "/readyz", 10, 3),
              f"health check {region}: {c['Type']} {c['ResourcePath']} every {c['RequestInterval']} s, {c['FailureThreshold']} failures")
records = r53.list_resource_record_sets(HostedZoneId=cfg["hostedZone"]["id"], MaxItems="300")["ResourceRecordSets"]
api = [r for r in records if r["Name"] == f"api.{cfg['domain']}."]
check(any(r.get("GeoLocation", {}).get("CountryCode") == "*" for r in api), "default (*) geolocation record for api")
check(sorted(r["GeoLocation"]["ContinentCode"] for r in api if "ContinentCode" in r.get("GeoLocation", {})) == sorted(cfg["geolocation"]),
      "one geolocation record per configured continent")
latency = [r for r in records if r["Name"] == f"latency.api.{cfg['domain']}."]
check(sorted(r.get("Region", "") for r in latency) == sorted([primary, *cfg["regions"]["secondary"]]), "latency records, one per region")
check(all(r.get("HealthCheckId") for r in latency), "every latency record carries a health check")
ecr_repos = {r["repositoryName"] for r in client("ecr", primary).describe_repositories()["repositories"]}
check({"akidb-serve", "model-server"} <= ecr_repos, f"ECR repositories {sorted(ecr_repos)}")

json.dump(report, open(report_path, "w"), indent=1)
print("resource types moto does not know (left out):", ", ".join(sorted({t for s in report.values() for t in s["unknown_to_moto"]})))
print("known types moto did not create:", ", ".join(sorted({t for s in report.values() for t in s["not_created"]})) or "none")
if failures:
    print(f"{len(failures)} moto check(s) failed", file=sys.stderr)
    sys.exit(1)
