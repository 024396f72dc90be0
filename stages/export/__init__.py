"""Export: meshes, videos and the HTML report of a trained generator (3DGP ref §8).

Modules:
  trajectories  camera trajectories around the mean posterior camera (front_circle, wiggle, line, points, orbit)
  media         render views with one tri-plane per sample; depth colour map; mp4/gif videos, video and PNG grids
  mesh          density grid -> marching cubes -> obj/ply/glb meshes
  pipeline      ``3dgp export``: samples, videos, grids, meshes and the report of one snapshot
  report        the self-contained ``report.html`` of a run
"""
